"""Unit tests of the training engine's parts: config / CLI, lr schedule, weight-decay groups,
optimizer state files, checkpoints and the training head. Integration runs are in
test_train.py and test_distributed.py (they import ``tiny_backbone`` from here)."""
import argparse
import math
import os

import gluonfr  # noqa: F401
from gluonfr.engine import CheckpointManager, TrainConfig, add_arguments, config_from_args
from gluonfr.engine.checkpoint import find_checkpoint
from gluonfr.engine.head import build_heads
from gluonfr.engine.optim import (
    load_optimizer_states,
    make_lr_scheduler,
    make_optimizer,
    save_optimizer_states,
    set_wd_mult,
)

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.gluon import nn


def tiny_backbone(embedding_size=16):
    """A small deterministic embedding net for engine tests: no BatchNorm, no dropout.

    Without BatchNorm or dropout the gradient of a batch is the sum of per-sample gradients,
    whatever device or worker computed each sample: multi-device and distributed runs must
    then match one process with the same global batch (up to float summation order).
    """
    net = nn.HybridSequential()
    net.add(nn.AvgPool2D(8), nn.Conv2D(8, 3, in_channels=3, activation="relu"), nn.Flatten(),
            nn.Dense(embedding_size, in_units=8 * 12 * 12))
    net.embedding_size = embedding_size
    return net


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


# -- config ---------------------------------------------------------------------------------------
@pytest.mark.compat
def test_cli_flags_fill_the_config():
    cfg = _parse(["--model", "iresnet50", "--loss", "cosface", "--gpus", "0,1", "--lr-steps",
                  "100000,160000", "--max-iters", "180000", "--val-targets", "lfw,agedb_30",
                  "--no-wd", "--head-wd-mult", "10", "--resume"])
    assert cfg.model == "iresnet50" and cfg.loss == "cosface"
    assert cfg.margin_m == 0.35  # CosFace's default margin, not ArcFace's
    assert cfg.ctx_spec == "gpu:0,gpu:1"
    assert cfg.lr_steps == [100000, 160000]
    assert cfg.val_targets == ["lfw", "agedb_30"]
    assert cfg.no_wd and cfg.head_wd_mult == 10.0 and cfg.resume == "latest"
    assert _parse(["--max-iters", "5"]).margin_m == 0.5


@pytest.mark.compat
def test_bad_values_name_the_flag():
    with pytest.raises(ValueError, match="--max-iters"):
        _parse([])  # neither iterations nor epochs
    with pytest.raises(ValueError, match="--lr-steps"):
        _parse(["--max-iters", "10", "--lr-steps", "8,4"])
    with pytest.raises(ValueError, match="--dtype.*GPU"):
        _parse(["--max-iters", "10", "--dtype", "float16"])
    with pytest.raises(ValueError, match="warmup_iters"):
        TrainConfig(max_iters=10, warmup_iters=10)


# -- lr schedule ----------------------------------------------------------------------------------
def test_lr_schedule_warmup_then_cosine_step_poly():
    lr, warm, total = 0.4, 10, 110
    cos = make_lr_scheduler("cosine", lr, total, warmup_iters=warm)
    # linear warmup from 0, reaching lr at the last warmup iteration
    assert cos(0) == 0.0
    assert cos(warm - 1) == pytest.approx(lr)
    assert cos(5) == pytest.approx(lr * 5 / (warm - 1))
    # cosine from lr at the first post-warmup iteration to 0 at the last one; half-way: lr/2
    assert cos(warm) == pytest.approx(lr)
    assert cos(total - 1) == pytest.approx(0.0, abs=1e-12)
    mid = warm + (total - warm - 1) / 2
    assert cos(int(mid)) == pytest.approx(lr * (1 + math.cos(math.pi * (int(mid) - warm)
                                                             / (total - warm - 1))) / 2)
    assert cos(total + 50) == pytest.approx(0.0, abs=1e-12)  # stays at the end value
    # steps are absolute iterations, warmup included
    step = make_lr_scheduler("step", lr, total, warmup_iters=warm, steps=[50, 80], factor=0.1)
    assert [step(t) for t in (20, 49, 50, 79, 80, 109)] == pytest.approx(
        [lr, lr, lr * 0.1, lr * 0.1, lr * 0.01, lr * 0.01])
    poly = make_lr_scheduler("poly", lr, total, power=2.0)
    assert poly(0) == pytest.approx(lr)
    assert poly(55) == pytest.approx(lr * (1 - 55 / (total - 1)) ** 2)


# -- weight decay groups --------------------------------------------------------------------------
def test_wd_multipliers_change_the_sgd_update():
    """One SGD step with zero gradient is pure weight decay: w <- w - lr*wd*mult*w."""
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, in_channels=3, use_bias=True), nn.BatchNorm(in_channels=4),
                nn.PReLU())
    head = nn.Dense(5, in_units=4, prefix="fc7_")
    net.initialize(mx.init.Uniform(1.0))
    head.initialize(mx.init.Uniform(1.0))
    for p in list(net.collect_params().values()) + list(head.collect_params().values()):
        p.set_data(mx.nd.ones(p.shape) * 2.0)
    changed = set_wd_mult(net.collect_params(), head.collect_params(), no_wd=True,
                          head_wd_mult=10.0)
    assert changed == {"net_conv0_bias": 0.0, "net_batchnorm0_gamma": 0.0,
                       "net_batchnorm0_beta": 0.0, "net_prelu0_alpha": 0.0,
                       "fc7_weight": 10.0, "fc7_bias": 0.0}
    params = net.collect_params()
    params.update(head.collect_params())
    lr, wd = 0.1, 0.01
    trainer = gluon.Trainer(params, make_optimizer("sgd", lr, wd, momentum=0.0))
    for p in params.values():
        if p.grad_req != "null":
            p.grad()[:] = 0
            p.data()._fresh_grad = True
    trainer.step(1, ignore_stale_grad=True)  # zero gradients written by hand, not backward
    expect = {"net_conv0_weight": 1.0, "fc7_weight": 10.0}
    for name, p in params.items():
        if p.grad_req == "null":
            continue
        mult = expect.get(name, 0.0)
        np.testing.assert_allclose(p.data().asnumpy(), 2.0 - lr * wd * mult * 2.0, rtol=1e-6,
                                   err_msg=name)


# -- optimizer states -----------------------------------------------------------------------------
def _sgd_setup(seed, momentum=0.9):
    mx.random.seed(seed)
    net = nn.Dense(3, in_units=4, prefix="d_")
    net.initialize(mx.init.Normal(0.5))
    trainer = gluon.Trainer(net.collect_params(), make_optimizer("nag", 0.1, 1e-3, momentum))
    return net, trainer


def _steps(net, trainer, xs):
    for x in xs:
        with autograd.record():
            loss = (net(x) ** 2).sum()
        loss.backward()
        trainer.step(x.shape[0])


def test_optimizer_states_round_trip_continues_exactly(tmp_path):
    xs = [mx.nd.array(np.random.RandomState(i).randn(2, 4)) for i in range(4)]
    net_a, tr_a = _sgd_setup(0)
    _steps(net_a, tr_a, xs[:2])
    path = str(tmp_path / "s.states")
    save_optimizer_states(tr_a, path)
    # an NDArray dict (no pickle): one momentum buffer per parameter
    saved = mx.nd.load(path)
    assert sorted(saved) == ["0", "1"]
    params_a = {k: v.data().copy() for k, v in net_a.collect_params().items()}
    _steps(net_a, tr_a, xs[2:])

    net_b, tr_b = _sgd_setup(1)  # different init, overwritten below
    for k, p in net_b.collect_params().items():
        p.set_data(params_a[k])
    load_optimizer_states(tr_b, path)
    _steps(net_b, tr_b, xs[2:])
    for (ka, pa), (_, pb) in zip(net_a.collect_params().items(), net_b.collect_params().items()):
        np.testing.assert_array_equal(pa.data().asnumpy(), pb.data().asnumpy(), err_msg=ka)

    # without the momentum the continuation differs: the file carries real state
    net_c, tr_c = _sgd_setup(1)
    for k, p in net_c.collect_params().items():
        p.set_data(params_a[k])
    _steps(net_c, tr_c, xs[2:])
    w_a = net_a.collect_params()["d_weight"].data().asnumpy()
    w_c = net_c.collect_params()["d_weight"].data().asnumpy()
    assert np.abs(w_a - w_c).max() > 1e-4


def test_optimizer_states_of_another_network_are_refused(tmp_path):
    net, tr = _sgd_setup(0)
    _steps(net, tr, [mx.nd.ones((2, 4))])
    path = str(tmp_path / "s.states")
    save_optimizer_states(tr, path)
    other = nn.Dense(5, in_units=4)
    other.initialize()
    tr_other = gluon.Trainer(other.collect_params(), make_optimizer("nag", 0.1, 0.0))
    with pytest.raises(ValueError, match="shape"):
        load_optimizer_states(tr_other, path)


# -- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_save_failing_mid_way_leaves_nothing_behind(tmp_path):
    net = nn.Dense(2, in_units=3)
    net.initialize()
    mgr = CheckpointManager(str(tmp_path), "m")
    mgr.save(10, net, net, lambda p: mx.nd.save(p, {}), {"epoch": 0})
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}

    def fails(path):
        with open(path, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        mgr.save(20, net, net, fails, {"epoch": 0})
    # the backbone and head were already written when the states failed: none of them (and
    # no temporary) may appear; the previous checkpoint is untouched
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before
    assert find_checkpoint("latest", str(tmp_path), "m")["iteration"] == 10


def test_checkpoints_keep_last_k_and_the_best(tmp_path):
    net = nn.Dense(2, in_units=3)
    net.initialize()
    mgr = CheckpointManager(str(tmp_path), "m", keep_last=2)
    for it in (10, 20, 30, 40):
        mgr.save(it, net, net, lambda p: mx.nd.save(p, {}), {"epoch": 0})
        if it == 20:
            mgr.mark_best(20, 0.9)
    assert [it for it, _ in mgr.list()] == [20, 30, 40]
    # each kept checkpoint is complete; the pruned ones left no file behind
    names = sorted(os.listdir(tmp_path))
    for it in (20, 30, 40):
        for suffix in (".params", "-head.params", ".states", ".json"):
            assert f"m-{it}{suffix}" in names
    assert not [n for n in names if n.startswith("m-10")]
    # a params file without its .json (a run killed mid-save) is not a checkpoint
    (tmp_path / "m-50.params").write_bytes(b"partial")
    meta = find_checkpoint("latest", str(tmp_path), "m")
    assert meta["iteration"] == 40
    assert find_checkpoint(str(tmp_path / "m-30.params"), str(tmp_path))["iteration"] == 30
    with pytest.raises(FileNotFoundError, match="m-50.json"):
        find_checkpoint(str(tmp_path / "m-50.params"), str(tmp_path))
    os.remove(tmp_path / "m-40.states")
    with pytest.raises(ValueError, match="states file m-40.states is missing"):
        find_checkpoint("latest", str(tmp_path), "m")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        find_checkpoint("latest", str(tmp_path / "empty"), "m")


# -- the training head ----------------------------------------------------------------------------
def test_head_hits_are_the_cosine_argmax_and_warmup_shares_the_centres():
    cfg = TrainConfig(max_iters=10, loss="arcface", margin_s=8.0, loss_warmup_iters=5)
    main, warm = build_heads(cfg, num_classes=6, embedding_size=4)
    main.initialize(mx.init.Xavier())
    assert warm.classifier is main.classifier  # NormFace warm-up trains the same centres
    rng = np.random.RandomState(0)
    emb = rng.randn(7, 4).astype(np.float32)
    label = np.array([0, 1, 2, 3, 4, 5, 0], dtype=np.float32)
    w = main.classifier.weight.data().asnumpy()
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ \
        (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    for head in (main, warm):
        head.hybridize()
        loss, hit = head(mx.nd.array(emb), mx.nd.array(label))
        np.testing.assert_array_equal(hit.asnumpy(), (cos.argmax(1) == label).astype(np.float32))
    # the warm-up loss is plain softmax cross-entropy of s*cos (NormFace)
    loss, _ = warm(mx.nd.array(emb), mx.nd.array(label))
    z = 8.0 * cos
    ref = np.log(np.exp(z).sum(1)) - z[np.arange(7), label.astype(int)]
    np.testing.assert_allclose(loss.asnumpy(), ref, rtol=1e-4)
    # ArcFace's margin makes the target harder: its loss is larger sample by sample
    arc, _ = main(mx.nd.array(emb), mx.nd.array(label))
    assert (arc.asnumpy() > loss.asnumpy()).all()


def test_loss_warmup_needs_a_cosine_head():
    with pytest.raises(ValueError, match="--loss-warmup-iters"):
        build_heads(TrainConfig(max_iters=10, loss="softmax", loss_warmup_iters=3), 5, 4)


# -- callbacks: the validation result is handed to the checkpoint callback ----------------------
class _FakeLoop:
    """The attributes the verification and checkpoint callbacks use, without training."""

    def __init__(self, max_iters):
        import logging

        self.iteration, self.max_iters, self.is_chief = 0, max_iters, True
        self.best_val, self.best_score, self.last_val = {}, None, None
        self.logger = logging.getLogger("test.fake_loop")
        self.saved, self.marked = [], []
        loop = self

        class Checkpoints:
            def mark_best(self, iteration, score, detail=None):
                loop.marked.append((iteration, score))

            def prune(self):
                pass

        self.checkpoints = Checkpoints()

    def sync_metrics(self):
        return {}

    def check_parameters_finite(self):
        pass

    def save_checkpoint(self):
        self.saved.append(self.iteration)
        return f"ckpt-{self.iteration}"


def test_checkpoint_callback_asks_the_validation_callback_whatever_their_order():
    from gluonfr.engine.callbacks import CheckpointCallback, VerificationCallback

    scores = {2: 0.5, 4: 0.7, 6: 0.6, 8: 0.8}  # validation every 2 iterations
    calls = []

    class Scripted(VerificationCallback):
        def _verify(self, loop):
            calls.append(loop.iteration)
            score = scores[loop.iteration]
            new_best = loop.best_score is None or score > loop.best_score
            if new_best:
                loop.best_score = score
            loop.last_val = {"iteration": loop.iteration, "mean": score}
            return dict(loop.last_val, new_best=new_best)

    validation = Scripted(2, targets={"t": None})
    # the checkpoint callback first: it must still see this iteration's validation result
    callbacks = [CheckpointCallback(5, validation=validation), validation]
    loop = _FakeLoop(max_iters=8)
    for it in range(1, 9):
        loop.iteration = it
        for cb in callbacks:
            cb.on_iteration_end(loop)
    assert calls == [2, 4, 6, 8]  # once per due iteration, though two callbacks ask
    assert loop.marked == [(2, 0.5), (4, 0.7), (8, 0.8)]  # 6 was not a new best
    assert loop.saved == [2, 4, 5, 8]  # new bests, the save interval, the last iteration
    assert validation.result_for(loop)["new_best"] is True  # iteration 8, not recomputed
    assert calls == [2, 4, 6, 8]
