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
import time

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


def _job_processes(marker):
    """PIDs of running (not zombie) processes whose command line holds ``marker``."""
    from gluonfr.engine.distributed import _running

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and _running(pid):
            found.append(int(pid))
    return found


def _launch(args, timeout, env=None):
    """scripts/launch_dist.py ARGS; (status, output), or the test fails at ``timeout``."""
    cmd = [sys.executable, os.path.join(REPO, "scripts", "launch_dist.py")] + args
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the job's processes are in its group
        out, _ = proc.communicate()
        pytest.fail(f"the launcher did not end within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


_WATCHED = """import logging, sys, time
from gluonfr.engine.distributed import StepWatchdog
logging.basicConfig(level=logging.INFO, format="%(message)s")
dog = StepWatchdog(0.4, 4, logging.getLogger("w"), lambda: "last finished iteration 9")
if sys.argv[1] == "idle":
    time.sleep(30)
dog.fail(RuntimeError("boom"))
if sys.argv[1] == "failed-and-stuck":
    time.sleep(30)
sys.exit(0)  # the error was caught, say: still a failed worker
"""


@pytest.mark.parametrize("case, status, message", [
    ("idle", 3, "rank 4: no training progress for 0.4 s (last finished iteration 9): another "
                "worker has probably failed or hangs (see its log); stopping this worker"),
    ("failed-and-stuck", 3, "rank 4: training failed (RuntimeError: boom); its kvstore cannot "
                            "shut down (the other workers wait for its gradients); exiting"),
    ("failed", 1, None),
])
def test_the_watchdog_ends_an_idle_or_failed_worker(tmp_path, case, status, message):
    prog = tmp_path / "watched.py"
    prog.write_text(_WATCHED)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(prog), case], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == status, proc.stderr
    assert time.monotonic() - t0 < 25  # not the 30 s sleeps
    if message:
        assert message in proc.stderr
    else:
        assert "no training progress" not in proc.stderr


# a stand-in job: scheduler and worker 0 wait as if for the others, worker 1 fails at once
_TOY_JOB = """import os, sys, time
role, task = os.environ["DMLC_ROLE"], os.environ.get("DMLC_TASK_ID")
if role == "worker" and task == "1":
    sys.exit(7)
time.sleep(600)
"""


def test_a_process_that_fails_ends_the_job_and_the_launcher_with_its_status(tmp_path):
    # dmlc_tracker alone waits for the scheduler, which waits for the dead worker: for ever
    job = tmp_path / "toy_job.py"
    job.write_text(_TOY_JOB)
    status, out = _launch(["-n", "2", "-s", "1", "--launcher", "local", "--", sys.executable,
                           str(job)], timeout=60)
    assert status == 7, out
    assert ("gluonfr-launch-dist: a worker (launcher task 1) exited with status 7: stopping "
            "the job's other processes") in out
    assert _job_processes(str(job)) == []  # scheduler, server and worker 0 are gone


@pytest.mark.slow
def test_a_failing_worker_ends_the_job_with_a_clear_error(tmp_path):
    data = str(tmp_path / "faces")
    synthetic.make_dataset(data, num_identities=12, images_per_identity=4, num_pairs=20, seed=1)
    # rank 0 alone would wait 60 s for rank 1's gradients; rank 1 exits (status 1) as soon as
    # it has printed its error, and the launcher then ends the job
    cfg = _cfg(data, tmp_path / "dist", kvstore="dist_sync", max_iters=50, log_interval=1,
               save_interval=50, dist_timeout=60)
    env = dict(os.environ, GLUONFR_TEST_FAIL_AT="3",
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    status, text = _launch(["-n", "2", "-s", "1", "--launcher", "local", "--", sys.executable,
                            os.path.abspath(__file__), "worker", json.dumps(cfg.to_dict()),
                            str(tmp_path)], timeout=200, env=env)
    assert status == 1, text[-3000:]  # rank 1's, passed on by the launcher
    assert ("rank 1: training failed after iteration 3 (RuntimeError: simulated worker "
            "failure); this worker exits and gluonfr-launch-dist stops the job") in text
    assert 'raise RuntimeError("simulated worker failure")' in text  # its traceback
    assert "exited with status 1: stopping the job's other processes" in text
    assert "no training progress" not in text  # nobody waited for a timeout
    assert _job_processes(str(tmp_path)) == []
    # rank 0's queued asynchronous steps may finish, then it stops: nobody trains on alone
    assert "iter 8/50" not in text
