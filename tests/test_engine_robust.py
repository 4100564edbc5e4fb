"""Training runs under real use: gradient clipping, head lr multiplier, AMP's skipped steps
and loss-scale state, corrupt records, exact resume of a network with BatchNorm, dropout and
PReLU, and save directories shared between runs."""
import json
import logging
import os

import gluonfr  # noqa: F401
from gluonfr.data import DataFormatError, synthetic
from gluonfr.data.recordio import RecordFile, RecordWriter, unpack_payload
from gluonfr.engine import Callback, TrainConfig, TrainLoop, train
from gluonfr.engine.checkpoint import find_checkpoint
from gluonfr.engine.optim import (
    clip_global_norm,
    count_skipped_update,
    loss_scaler_state,
    make_optimizer,
    restore_loss_scaler,
)
from gluonfr.nn import PReLU

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.contrib.amp.loss_scaler import LossScaler
from mxnet.gluon import nn

TAG = "tiny_backbone"


def bn_dropout_prelu_backbone(embedding_size=16):
    """Everything that carries state or randomness besides the weights: BatchNorm running
    statistics, dropout masks and PReLU slopes (gluonfr's oneDNN formulation)."""
    net = nn.HybridSequential()
    net.add(nn.AvgPool2D(8), nn.Conv2D(8, 3, in_channels=3, use_bias=False),
            nn.BatchNorm(in_channels=8), PReLU(8), nn.Dropout(0.3), nn.Flatten(),
            nn.Dense(embedding_size, in_units=8 * 12 * 12))
    net.embedding_size = embedding_size
    return net


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    synthetic.make_dataset(str(root), num_identities=12, images_per_identity=4, num_pairs=10,
                           seed=2)
    return str(root)


def _cfg(faces, save_dir, **kw):
    base = dict(model="test_engine:tiny_backbone", data_dir=faces, batch_size=8, max_iters=2,
                lr=0.1, wd=0.0, momentum=0.0, loss="cosface", margin_s=16.0, lr_mode="step",
                log_interval=1, save_interval=2, val_interval=0, save_dir=str(save_dir),
                num_workers=0, progress=False, tensorboard="none", seed=3, micro_batch=0)
    base.update(kw)
    return TrainConfig(**base)


class Snapshot(Callback):
    def on_train_begin(self, loop):
        self.start = {k: p.data().asnumpy().copy() for k, p in loop.params.items()}

    def on_train_end(self, loop):
        self.end = {k: p.data().asnumpy().copy() for k, p in loop.params.items()}


def _load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


# -- clipping and multipliers ---------------------------------------------------------------
def test_clip_global_norm_against_numpy():
    rng = np.random.default_rng(0)
    params = []
    for shape in ((3, 4), (5,)):
        p = gluon.Parameter(f"p{len(params)}", shape=shape)
        p.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
        g = rng.normal(size=shape).astype(np.float32)
        for grad in p.list_grad():
            grad[:] = g
        params.append(p)
    total = np.sqrt(sum((p.grad(mx.cpu(0)).asnumpy() ** 2).sum() for p in params))
    norm = clip_global_norm(params, max_norm=0.5, batch_size=4)
    assert norm == pytest.approx(total / 4, rel=1e-6)
    after = np.sqrt(sum((p.grad(mx.cpu(0)).asnumpy() ** 2).sum() for p in params)) / 4
    assert after == pytest.approx(0.5, rel=1e-5)
    for p in params:  # every device scaled alike
        np.testing.assert_array_equal(p.grad(mx.cpu(0)).asnumpy(), p.grad(mx.cpu(1)).asnumpy())
    assert clip_global_norm(params, max_norm=10.0, batch_size=4) == pytest.approx(0.5, rel=1e-5)


def test_clip_grad_bounds_the_update_and_fc_lr_mult_freezes_the_centres(faces, tmp_path):
    # plain SGD, no momentum or weight decay: the update is lr * the clipped mean gradient
    snap = Snapshot()
    train(_cfg(faces, tmp_path / "clip", max_iters=1, save_interval=1, clip_grad=1e-3),
          callbacks=[snap])
    step = np.sqrt(sum(((snap.end[k] - snap.start[k]).astype(np.float64) ** 2).sum()
                       for k in snap.start))
    assert step == pytest.approx(0.1 * 1e-3, rel=1e-3)
    snap = Snapshot()
    train(_cfg(faces, tmp_path / "fc", head_lr_mult=0.0), callbacks=[snap])
    for k in snap.start:
        moved = not np.array_equal(snap.start[k], snap.end[k])
        assert moved == (not k.startswith("fc7_")), k


# -- AMP loss scaling ------------------------------------------------------------------------
def _overflowing_scaler(trainer, scale=1e38):
    """What amp.init_trainer attaches, with a scale that overflows float32 gradients."""
    scaler = LossScaler()
    scaler._loss_scale = scaler._next_loss_scale = scale
    trainer._amp_loss_scaler = scaler
    trainer._amp_original_scale = trainer._scale
    return scaler


def test_skipped_overflow_steps_still_count_and_the_scaler_state_round_trips():
    net = nn.Dense(3, in_units=4)
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), make_optimizer("adam", 0.01, 0.0))
    _overflowing_scaler(trainer)
    x = mx.nd.ones((2, 4))
    from mxnet.contrib import amp

    with autograd.record():
        loss = net(x).sum() * 10
        with amp.scale_loss(loss, trainer) as scaled:
            autograd.backward(scaled)
    before = net.weight.data().asnumpy().copy()
    trainer.step(2)
    assert trainer.optimizer.num_update == 0  # MXNet skipped the update without counting it
    np.testing.assert_array_equal(net.weight.data().asnumpy(), before)
    count_skipped_update(trainer.optimizer)
    assert trainer.optimizer.num_update == 1
    state = loss_scaler_state(trainer)
    assert state == {"loss_scale": 1e38, "next_loss_scale": 5e37, "unskipped": 0}
    other = gluon.Trainer(net.collect_params(), "sgd")
    _overflowing_scaler(other, scale=2.0 ** 16)
    restore_loss_scaler(other, json.loads(json.dumps(state)))
    assert loss_scaler_state(other) == state
    assert loss_scaler_state(gluon.Trainer(net.collect_params(), "sgd")) is None


class AlwaysOverflow(LossScaler):
    """A scaler whose every step overflows (float16 gradients need a GPU to overflow)."""

    def has_overflow(self, params):
        self._loss_scale = self._next_loss_scale
        self._next_loss_scale = self._loss_scale / 2
        self._unskipped = 0
        return True


def _attach(trainer, scaler):
    trainer._amp_loss_scaler = scaler
    trainer._amp_original_scale = trainer._scale
    return scaler


def test_the_loop_counts_logs_and_checkpoints_skipped_amp_steps(faces, tmp_path):
    cfg = _cfg(faces, tmp_path / "amp", max_iters=3, save_interval=3, lr_mode="cosine")
    loop = TrainLoop(cfg)
    _attach(loop.trainer, AlwaysOverflow())
    snap = Snapshot()
    loop.callbacks.append(snap)
    loop.run()
    for k in snap.start:  # every step overflowed: nothing was updated
        np.testing.assert_array_equal(snap.start[k], snap.end[k], err_msg=k)
    assert loop.trainer.optimizer.num_update == 3 == loop.iteration  # the lr stays in step
    meta = json.load(open(tmp_path / "amp" / f"{TAG}-3.json"))
    assert meta["num_update"] == 3 and meta["amp_skipped_steps"] == 3
    assert meta["loss_scaler"] == {"loss_scale": 16384.0, "next_loss_scale": 8192.0,
                                   "unskipped": 0}
    log = open(tmp_path / "amp" / "log.txt").read()
    assert "iteration 3: float16 gradients overflowed, update skipped (3 so far); loss scale " \
           "16384 -> 8192" in log
    # resuming puts the scaler back where it was (amp.init_trainer runs before the restore)
    resumed = TrainLoop(_cfg(faces, tmp_path / "amp", max_iters=4, save_interval=3,
                             lr_mode="cosine", resume="latest"))
    _attach(resumed.trainer, LossScaler())
    resumed._restore(find_checkpoint("latest", str(tmp_path / "amp"), TAG))
    assert loss_scaler_state(resumed.trainer) == meta["loss_scaler"]
    assert resumed.amp_skipped == 3 and resumed.trainer.optimizer.num_update == 3


# -- corrupt records -------------------------------------------------------------------------
def test_skip_corrupt_trains_past_bad_records_and_logs_them(faces, tmp_path):
    damaged = tmp_path / "damaged"
    records = RecordFile(os.path.join(faces, "train.rec"), os.path.join(faces, "train.idx"))
    with RecordWriter(str(damaged)) as w:
        for k in range(1, 49):  # the 48 images (keys 1..48) of the fixture
            _, label, img = unpack_payload(records.read(k), "fixture")
            w.add(int(label), b"not a jpeg" if k == 5 else img)
    with pytest.raises(DataFormatError, match=r"record key 5: cannot decode"):
        train(_cfg(str(damaged), tmp_path / "strict", max_iters=6, save_interval=6))
    res = train(_cfg(str(damaged), tmp_path / "skip", max_iters=6, save_interval=6,
                     skip_corrupt=1))
    assert res["iterations"] == 6
    log = open(tmp_path / "skip" / "log.txt").read()
    assert "skipped corrupt record (1 of at most 1)" in log and "record key 5" in log


# -- exact resume with BatchNorm, dropout and PReLU ------------------------------------------
class StopAt(Callback):
    def __init__(self, iteration):
        self.iteration = iteration

    def on_iteration_end(self, loop):
        if loop.iteration == self.iteration:
            raise KeyboardInterrupt  # the run dies right after its checkpoint


def test_exact_resume_with_batchnorm_dropout_and_prelu(faces, tmp_path):
    kw = dict(model="test_engine_robust:bn_dropout_prelu_backbone", max_iters=7,
              save_interval=3, momentum=0.9, wd=5e-4, lr=0.05, micro_batch=4)
    full = train(_cfg(faces, tmp_path / "full", **kw))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(faces, tmp_path / "cut", **kw), callbacks=[StopAt(4)])
    resumed = train(_cfg(faces, tmp_path / "cut", resume="latest", **kw))
    assert resumed["trained_iterations"] == 4
    tag = "bn_dropout_prelu_backbone"
    for suffix in (".params", "-head.params", ".states"):
        a = _load(os.path.join(full["save_dir"], f"{tag}-7{suffix}"))
        b = _load(os.path.join(tmp_path / "cut", f"{tag}-7{suffix}"))
        assert sorted(a) == sorted(b)
        for k in a:  # running mean/var, slopes and weights alike
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    params = _load(os.path.join(full["save_dir"], f"{tag}-7.params"))
    running = [k for k in params if k.endswith("running_var")]
    assert running and not np.allclose(params[running[0]], 1.0)  # the statistics did move


@pytest.fixture(autouse=True)
def _quiet_train_logger():
    yield
    logging.getLogger("gluonfr.train").handlers.clear()


# -- save directories shared between runs ----------------------------------------------------
def _files(folder):
    return sorted(os.listdir(folder))


def test_a_fresh_run_refuses_another_runs_save_dir_unless_overwrite(faces, tmp_path):
    d = tmp_path / "run"
    first = train(_cfg(faces, d, max_iters=4, save_interval=2, keep_last=1))
    first_id = json.load(open(first["checkpoint"]))["run_id"]
    before = _files(d)
    with pytest.raises(ValueError, match=r"--save-dir .*run already holds checkpoints of "
                                         r"another run \(1, latest: tiny_backbone-4\.json\): "
                                         r"pass --resume .*--overwrite"):
        train(_cfg(faces, d, max_iters=2, save_interval=1, keep_last=5))
    assert _files(d) == before  # nothing touched
    second = train(_cfg(faces, d, max_iters=2, save_interval=1, keep_last=5, overwrite=True))
    meta = json.load(open(second["checkpoint"]))
    assert meta["run_id"] != first_id
    assert [f for f in _files(d) if f.endswith(".json") and f[-6].isdigit()] == \
        [f"{TAG}-1.json", f"{TAG}-2.json"]  # the new run's, none of the old one's
    assert "--overwrite: deleted 1 checkpoints of an earlier run" in open(d / "log.txt").read()


def test_a_resumed_run_never_prunes_what_it_just_wrote(faces, tmp_path):
    d = tmp_path / "run"
    train(_cfg(faces, d, max_iters=6, save_interval=2, keep_last=3))  # writes 2, 4, 6
    # back to iteration 2 (say 4 and 6 diverged); keep one checkpoint
    res = train(_cfg(faces, d, max_iters=3, save_interval=3, keep_last=1,
                     resume=str(d / f"{TAG}-2.json")))
    assert res["checkpoint"].endswith(f"{TAG}-3.json")
    assert os.path.isfile(res["checkpoint"])  # kept: written last, though 6 is a later iteration
    assert f"{TAG}-6.json" not in _files(d)
    assert find_checkpoint("latest", str(d), TAG)["iteration"] == 3


def test_resume_latest_refuses_to_choose_between_two_runs(faces, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(_cfg(faces, a, max_iters=4, save_interval=4))
    train(_cfg(faces, b, max_iters=2, save_interval=2))
    for name in _files(b):  # another run's checkpoint copied in by hand
        if name.startswith(TAG + "-2"):
            os.replace(b / name, a / name)
    with pytest.raises(ValueError, match=r"--resume latest: .*a holds checkpoints of 2 "
                                         r"different runs .*--resume PATH\.json"):
        train(_cfg(faces, a, max_iters=6, save_interval=2, resume="latest"))


def test_temporaries_of_an_interrupted_checkpoint_write_are_removed(faces, tmp_path):
    d = tmp_path / "run"
    train(_cfg(faces, d, max_iters=2, save_interval=2))
    # what atomic_paths leaves when the process dies inside the write
    stale = [d / f".{TAG}-4.params.0123abcd.tmp.params", d / f".{TAG}-4.json.89abcdef.tmp.json"]
    for path in stale:
        path.write_bytes(b"partial")
    (d / "notes.tmp").write_text("not ours")
    train(_cfg(faces, d, max_iters=3, save_interval=3, resume="latest"))
    assert not any(p.exists() for p in stale) and (d / "notes.tmp").exists()
    log = open(d / "log.txt").read()
    assert log.count("left by an interrupted checkpoint write") == 2


def test_every_rank_checks_for_nan_where_checkpoints_are_written(faces, tmp_path):
    from gluonfr.engine import CheckpointCallback, NonFiniteLossError

    loop = TrainLoop(_cfg(faces, tmp_path / "rank1", max_iters=4, save_interval=2))
    loop.is_chief = False  # what a distributed worker of rank > 0 sees
    next(iter(loop.params.values())).data()[:] = float("nan")
    callback = CheckpointCallback(2)
    loop.iteration = 1
    callback.on_iteration_end(loop)  # not a checkpoint iteration: nothing checked
    loop.iteration = 2
    with pytest.raises(NonFiniteLossError, match="parameters' norm became nan at iteration 2"):
        callback.on_iteration_end(loop)
    assert not [f for f in os.listdir(tmp_path / "rank1") if f.endswith(".params")]
