"""Multi-machine training on loopback: MXNet's launcher starts 1 scheduler, 1 server and 2
workers (scripts/launch_dist.py); both workers must end with identical parameters, equal to
one process training with the same global batch.

This file is also the workers' program: ``python test_distributed.py worker CFG OUT``.
"""
import json
import os
import signal
import subprocess
import sys

import gluonfr  # noqa: F401  (before mxnet; in scheduler/server roles it runs the service)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _same_centres():
    """A callback that starts a Partial FC head from the same centres whatever its sharding
    (PartialFC draws each slice from the MXNet RNG of its worker, and workers are seeded per
    rank)."""
    from gluonfr.engine import Callback

    import numpy as np

    class SameCentres(Callback):
        def on_train_begin(self, loop):
            if loop.pfc is not None:
                rng = np.random.default_rng(7)
                loop.pfc.set_full_weight(rng.normal(0, 0.01, (loop.pfc.classes,
                                                              loop.pfc.in_units)))

    return SameCentres()


def _worker(cfg_json, out_dir):
    from gluonfr.engine import Callback, TrainConfig, train

    class Dump(Callback):
        def on_train_end(self, loop):
            loop.backbone.save_parameters(os.path.join(out_dir, f"rank{loop.rank}.params"))
            loop.main_head.save_parameters(os.path.join(out_dir, f"rank{loop.rank}-head.params"))

    class FailRank1(Callback):  # GLUONFR_TEST_FAIL_AT=3: rank 1 dies at iteration 3
        def on_iteration_end(self, loop):
            if loop.rank == 1 and loop.iteration == int(os.environ["GLUONFR_TEST_FAIL_AT"]):
                raise RuntimeError("simulated worker failure")

    fail = [FailRank1()] if os.environ.get("GLUONFR_TEST_FAIL_AT") else []
    train(TrainConfig(**json.loads(cfg_json)), callbacks=[_same_centres(), Dump()] + fail)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    _worker(sys.argv[2], sys.argv[3])
    sys.exit(0)

from gluonfr.data import synthetic  # noqa: E402
from gluonfr.engine import TrainConfig, train  # noqa: E402

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from dist_launch import run_loopback_job  # noqa: E402


def _cfg(data, save_dir, **kw):
    # the tiny backbone has no BatchNorm or dropout: per-worker gradients simply add up
    base = dict(model="test_engine:tiny_backbone", data_dir=data, batch_size=8, max_iters=6,
                lr=0.02, wd=5e-4, momentum=0.9, loss="cosface", margin_s=16.0, lr_mode="step",
                log_interval=3, save_interval=6, val_interval=0, save_dir=str(save_dir),
                num_workers=0, progress=False, tensorboard="none", seed=5)
    base.update(kw)
    return TrainConfig(**base)


def _load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


@pytest.mark.slow
def test_two_workers_on_loopback_match_one_process(tmp_path):
    data = str(tmp_path / "faces")
    synthetic.make_dataset(data, num_identities=12, images_per_identity=4, num_pairs=20, seed=1)
    cfg = _cfg(data, tmp_path / "dist", kvstore="dist_sync")
    out = tmp_path / "out"
    out.mkdir()
    text = run_loopback_job([os.path.abspath(__file__), "worker", json.dumps(cfg.to_dict()),
                             str(out)])
    assert "x 2 worker(s), global batch 16" in text

    single = train(_cfg(data, tmp_path / "single", batch_size=16))
    for suffix in (".params", "-head.params"):
        r0, r1 = _load(out / f"rank0{suffix}"), _load(out / f"rank1{suffix}")
        ref = _load(os.path.join(single["save_dir"], f"tiny_backbone-6{suffix}"))
        for k in ref:
            np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)  # one update for all
            np.testing.assert_allclose(r0[k], ref[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # rank 0 wrote the run's checkpoint; the other worker wrote nothing there
    ckpt = _load(os.path.join(cfg.save_dir, "tiny_backbone-6.params"))
    for k in ckpt:
        np.testing.assert_array_equal(ckpt[k], _load(out / "rank0.params")[k])


@pytest.mark.slow
def test_two_workers_with_partial_fc_match_one_process_of_two_devices(tmp_path):
    # each worker holds half the classes (sampled at 0.5); the single process holds the same
    # two slices on two devices (shard = rank * devices + device: the same samples), with the
    # same global batch
    from gluonfr.engine.checkpoint import merge_classifier

    data = str(tmp_path / "faces")
    synthetic.make_dataset(data, num_identities=12, images_per_identity=4, num_pairs=20, seed=1)
    kw = dict(sample_rate=0.5, save_interval=4, keep_last=1, val_interval=3,
              val_targets=["synth_val"])
    cfg = _cfg(data, tmp_path / "dist", kvstore="dist_sync", **kw)
    out = tmp_path / "out"
    out.mkdir()
    text = run_loopback_job([os.path.abspath(__file__), "worker", json.dumps(cfg.to_dict()),
                             str(out)])
    assert "x 2 worker(s), global batch 16" in text
    single = train(_cfg(data, tmp_path / "single", ctx="cpu:0,cpu:1", **kw),
                   callbacks=[_same_centres()])
    r0, r1 = _load(out / "rank0.params"), _load(out / "rank1.params")
    ref = _load(os.path.join(single["save_dir"], "tiny_backbone-6.params"))
    for k in ref:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
        np.testing.assert_allclose(r0[k], ref[k], rtol=1e-4, atol=1e-6, err_msg=k)
    centres = merge_classifier(cfg.save_dir)  # rank 0's slice + rank 1's file beside it
    want = merge_classifier(single["save_dir"])
    assert centres.shape == (12, 16)
    np.testing.assert_allclose(centres, want, rtol=1e-4, atol=1e-6)
    # every kept checkpoint has both slices, the best of iteration 3 too (rank 0 alone
    # verifies: its verdict reaches rank 1); pruned ones (4) left none
    kept = sorted(f for f in os.listdir(cfg.save_dir) if f.endswith(".json")
                  and f[len("tiny_backbone-"):-5].isdigit())
    assert "tiny_backbone-3.json" in kept and "tiny_backbone-4.json" not in kept, kept
    rank_files = sorted(f for f in os.listdir(cfg.save_dir) if ".rank1." in f)
    assert rank_files == [k[:-5] + "-head.rank1.params" for k in kept], (kept, rank_files)
    for k in kept:
        merge_classifier(os.path.join(cfg.save_dir, k))


@pytest.mark.slow
def test_a_failing_worker_stops_every_worker_with_a_clear_error(tmp_path):
    import threading
    import time

    data = str(tmp_path / "faces")
    synthetic.make_dataset(data, num_identities=12, images_per_identity=4, num_pairs=20, seed=1)
    cfg = _cfg(data, tmp_path / "dist", kvstore="dist_sync", max_iters=50, log_interval=1,
               save_interval=50, dist_timeout=20)
    env = dict(os.environ, GLUONFR_TEST_FAIL_AT="3",
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, os.path.join(REPO, "scripts", "launch_dist.py"), "-n", "2", "-s", "1",
           "--launcher", "local", "--", sys.executable, os.path.abspath(__file__), "worker",
           json.dumps(cfg.to_dict()), str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    expected = ["rank 1: training failed after iteration 3 (RuntimeError: simulated worker "
                "failure)",
                "rank 0: no training progress for 20 s (last finished iteration"]
    deadline = time.time() + 200
    try:
        while time.time() < deadline and not all(e in "".join(lines) for e in expected):
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # scheduler and server wait for ever otherwise
        proc.wait()
        reader.join(timeout=5)
    text = "".join(lines)
    for e in expected:
        assert e in text, text[-3000:]
    # rank 0's queued asynchronous steps may finish, then it stops: nobody trains on alone
    assert "iter 8/50" not in text
