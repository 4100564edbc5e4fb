"""Training runs end to end on a small procedural face set with a tiny backbone:
exact resume after SIGKILL, multi-device equivalence, the NaN stop, loss warm-up, the CLI,
and flip-sum verification on a briefly trained network."""
import json
import os
import runpy
import signal
import subprocess
import sys

import gluonfr  # noqa: F401
from gluonfr.data import synthetic
from gluonfr.engine import Callback, NonFiniteLossError, TrainConfig, TrainLoop, train
from gluonfr.engine.checkpoint import merge_classifier
from gluonfr.model_zoo import default_initializer

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODEL = "test_engine:tiny_backbone"  # tests/ is on sys.path (and on PYTHONPATH below)
TAG = "tiny_backbone"


@pytest.fixture(scope="session")
def faces(tmp_path_factory):
    """60 training identities x 5 images (9 batches of 32 per epoch) and 100 held-out
    verification pairs, with half the default nuisance so a small net learns in seconds."""
    root = tmp_path_factory.mktemp("faces")
    synthetic.make_dataset(str(root), num_identities=60, images_per_identity=5, num_pairs=100,
                           seed=3, strength=0.5)
    return str(root)


def _cfg(faces, save_dir, **kw):
    base = dict(model=MODEL, data_dir=faces, batch_size=32, max_iters=10, lr=0.05, wd=5e-4,
                momentum=0.9, loss="arcface", margin_s=16.0, loss_warmup_iters=4,
                lr_mode="cosine", warmup_iters=2, log_interval=2, save_interval=3,
                val_interval=0, save_dir=str(save_dir), num_workers=0, progress=False,
                tensorboard="none", seed=7)
    base.update(kw)
    return TrainConfig(**base)


def _load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def _assert_same(a, b, atol=0.0):
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


class Record(Callback):
    def __init__(self):
        self.phases, self.initial = [], None

    def on_train_begin(self, loop):
        self.initial = {k: p.data().asnumpy().copy()
                        for k, p in loop.backbone.collect_params().items()}

    def on_iteration_end(self, loop):
        self.phases.append((loop.iteration, loop.loss_name))


_KILLED_RUN = """
import json, os, signal, sys
import gluonfr
from gluonfr.engine import Callback, TrainConfig, train

class KillAt(Callback):
    def on_iteration_end(self, loop):
        if loop.iteration == 8:
            os.kill(os.getpid(), signal.SIGKILL)

train(TrainConfig(**json.loads(sys.argv[1])), callbacks=[KillAt()])
"""


def test_resume_after_sigkill_reaches_the_uninterrupted_parameters(faces, tmp_path):
    # the kill and the resume cross the NormFace -> ArcFace switch (iteration 4), the end of
    # the lr warmup and an epoch boundary (9 batches per epoch)
    full = train(_cfg(faces, tmp_path / "full"))
    assert full["iterations"] == 10

    killed = _cfg(faces, tmp_path / "killed")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, json.dumps(killed.to_dict())],
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    names = os.listdir(killed.save_dir)
    assert f"{TAG}-6.json" in names and f"{TAG}-9.json" not in names  # killed at iteration 8

    resumed = train(_cfg(faces, tmp_path / "killed", resume="latest"))
    assert resumed["trained_iterations"] == 4  # 7..10: only the work after the checkpoint
    with open(os.path.join(killed.save_dir, "log.txt")) as f:
        assert f"resumed from {os.path.join(killed.save_dir, TAG + '-6.json')} at iteration 6" \
            in f.read()
    for suffix in (".params", "-head.params"):
        _assert_same(_load(os.path.join(full["save_dir"], f"{TAG}-10{suffix}")),
                     _load(os.path.join(killed.save_dir, f"{TAG}-10{suffix}")), atol=1e-6)
    # the optimizer states (momentum) continued too
    _assert_same(_load(os.path.join(full["save_dir"], f"{TAG}-10.states")),
                 _load(os.path.join(killed.save_dir, f"{TAG}-10.states")), atol=1e-6)
    meta = json.load(open(os.path.join(killed.save_dir, f"{TAG}-10.json")))
    assert (meta["iteration"], meta["epoch"], meta["batch_in_epoch"]) == (10, 1, 1)
    assert meta["num_update"] == 10 and meta["loss_phase"] == "arcface"


def test_two_cpu_contexts_match_one_with_the_same_global_batch(faces, tmp_path):
    """The tiny backbone has no BatchNorm and no dropout, and the gradient is summed over the
    devices and divided by the global batch: each update equals the one-device update, up to
    the order of float summation (the loss warm-up is off so the comparison runs on ArcFace
    with its margin)."""
    kw = dict(max_iters=4, loss_warmup_iters=0, lr=0.01, save_interval=4, warmup_iters=0,
              lr_mode="step", micro_batch=0)  # whole batches: one device vs two, nothing else
    one = train(_cfg(faces, tmp_path / "one", ctx="cpu:0", batch_size=32, **kw))
    two = train(_cfg(faces, tmp_path / "two", ctx="cpu:0,cpu:1", batch_size=16,
                     kvstore="device", **kw))
    for suffix in (".params", "-head.params"):
        a = _load(os.path.join(one["save_dir"], f"{TAG}-4{suffix}"))
        b = _load(os.path.join(two["save_dir"], f"{TAG}-4{suffix}"))
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # not vacuous: the parameters moved from their initial values
    init = train(_cfg(faces, tmp_path / "zero", ctx="cpu:0", batch_size=32, max_iters=1,
                      lr=1e-12, save_interval=1, loss_warmup_iters=0, warmup_iters=0))
    a0 = _load(os.path.join(init["save_dir"], f"{TAG}-1-head.params"))
    assert max(np.abs(a0[k] - a[k]).max() for k in a) > 1e-3


class PoisonAt(Callback):
    """Turn the backbone's last weight into NaN after an iteration."""

    def __init__(self, iteration):
        self.iteration = iteration

    def on_iteration_end(self, loop):
        if loop.iteration == self.iteration:
            p = list(loop.backbone.collect_params().values())[-2]
            p.set_data(p.data() * float("nan"))


def test_non_finite_loss_stops_naming_the_iteration_and_keeps_the_checkpoint(faces, tmp_path):
    cfg = _cfg(faces, tmp_path, max_iters=12, save_interval=4, log_interval=2)
    with pytest.raises(NonFiniteLossError, match="iteration 6") as err:
        train(cfg, callbacks=[PoisonAt(5)])
    good = os.path.join(cfg.save_dir, f"{TAG}-4.json")
    assert err.value.iteration == 6 and err.value.checkpoint == good
    assert good in str(err.value)
    assert not [n for n in os.listdir(cfg.save_dir) if n.startswith(f"{TAG}-8")]
    with open(os.path.join(cfg.save_dir, "log.txt")) as f:
        assert "iteration 6" in f.read()


def test_cli_trains_with_loss_warmup_epochs_and_logs(faces, tmp_path):
    script = runpy.run_path(os.path.join(REPO, "scripts", "train.py"), run_name="cli")
    save = tmp_path / "cli"
    rc = script["main"]([
        "--model", MODEL, "--data-dir", faces, "--batch-size", "32", "--epochs", "2",
        "--loss", "arcface", "--margin-s", "16", "--loss-warmup-iters", "3", "--lr", "0.05",
        "--lr-mode", "step", "--lr-steps", "8", "--log-interval", "1", "--save-interval", "9",
        "--val-interval", "9", "--val-targets", "synth_val,lfw", "--save-dir", str(save),
        "--num-workers", "0", "--no-progress"])
    assert rc == 0
    log = open(save / "log.txt").read()
    lines = [ln for ln in log.splitlines() if " loss " in ln and "iter " in ln]
    assert len(lines) == 18  # 2 epochs of 300 // 32 = 9 batches, one line per iteration
    assert all(ln.endswith("[normface]") for ln in lines[:3])
    assert all(ln.endswith("[arcface]") for ln in lines[3:])
    assert "lr 0.05 " in lines[6] and "lr 0.005 " in lines[7]  # the 8th update is stepped
    assert "lfw.bin not found: skipped" in log and "[synth_val] iter 18 accuracy-flip" in log
    names = os.listdir(save)
    for it in (9, 18):
        for suffix in (".params", "-head.params", ".states", ".json"):
            assert f"{TAG}-{it}{suffix}" in names
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(save / "tensorboard"))
    best = json.load(open(save / f"{TAG}-best.json"))
    assert best["iteration"] in (9, 18)


def test_pretrained_backbone_starts_from_the_file(faces, tmp_path):
    first = train(_cfg(faces, tmp_path / "a", max_iters=3, save_interval=3))
    path = os.path.join(first["save_dir"], f"{TAG}-3.params")
    rec = Record()
    train(_cfg(faces, tmp_path / "b", max_iters=2, warmup_iters=0, pretrained_backbone=path),
          callbacks=[rec])
    saved = _load(path)
    got = {k: v for k, v in rec.initial.items()}
    assert len(saved) == len(got)
    for a, b in zip(sorted(saved.items()), sorted(got.items())):
        np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="--pretrained-backbone"):
        train(_cfg(faces, tmp_path / "c", max_iters=2, warmup_iters=0, pretrained_backbone=path,
                   model="mobilefacenet"))


def small_bn_backbone(embedding_size=32):
    """A small conv net with BatchNorm and global pooling: learns colours and layout that
    carry over to unseen identities within a few seconds of training."""
    net = nn.HybridSequential()
    net.add(nn.HybridLambda(lambda F, x: (x - 127.5) * 0.0078125), nn.AvgPool2D(2))
    cin = 3
    for c in (16, 32, 64, 64):
        net.add(nn.Conv2D(c, 3, strides=2, padding=1, in_channels=cin, use_bias=False),
                nn.BatchNorm(in_channels=c), nn.Activation("relu"))
        cin = c
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(embedding_size, in_units=cin),
            nn.BatchNorm(in_channels=embedding_size))
    net.embedding_size = embedding_size
    return net


def test_flip_sum_is_not_worse_than_no_flip_on_a_trained_network(faces, tmp_path):
    from gluonfr.metrics import evaluate_targets, load_targets

    mx.random.seed(0)
    net = small_bn_backbone()
    net.initialize(default_initializer())
    res = train(_cfg(faces, tmp_path, max_iters=150, lr=0.1, loss="normface",
                     loss_warmup_iters=0, save_interval=150, log_interval=50), backbone=net)
    assert res["last_stats"]["accuracy"] > 0.3  # trained: 60 classes, chance is 0.017
    targets, _ = load_targets(faces, ["synth_val"])
    r = evaluate_targets(net, targets, batch_size=50, flip=True, progress=False)["synth_val"]
    flip, plain = r["accuracy"], r["noflip"]["accuracy"]
    noise = 2 * np.sqrt(plain * (1 - plain) / 100)  # two binomial standard errors, 100 pairs
    assert flip >= plain - noise, (flip, plain)


def _recipe_config(name, extra=(), **env):
    """The TrainConfig a recipe script would run (PYTHON=echo prints the train.py command)."""
    import argparse

    from gluonfr.engine import add_arguments, config_from_args

    full_env = dict(os.environ, PYTHON="echo", **env)
    out = subprocess.run(["bash", os.path.join(REPO, "scripts", name), *extra], env=full_env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].endswith("train.py")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(out[1:]))


def test_mobilefacenet_arcface_recipe_is_gluon_face_s():
    cfg = _recipe_config("mobilefacenet-arcface.sh")
    assert cfg.ctx_spec == ",".join(f"gpu:{i}" for i in range(8)) and cfg.batch_size == 220
    assert (cfg.model, cfg.embedding_size, cfg.loss, cfg.margin_s, cfg.margin_m) == \
        ("mobilefacenet", 128, "arcface", 64.0, 0.5)
    assert (cfg.optimizer, cfg.lr, cfg.lr_mode, cfg.warmup_iters, cfg.max_iters) == \
        ("nag", 0.35, "cosine", 5000, 86000)
    assert (cfg.wd, cfg.no_wd, cfg.head_wd_mult, cfg.loss_warmup_iters) == (4e-5, True, 10.0, 35000)
    assert cfg.val_targets == ["lfw", "agedb_30"] and cfg.data_dir == "data/faces_emore"
    # environment and extra arguments
    cfg = _recipe_config("mobilefacenet-arcface.sh", ["--max-iters", "6000", "--resume"],
                         GPUS="", CTX="cpu:0,cpu:1", BATCH_SIZE="8", DATA_DIR="/d", SAVE_DIR="/s")
    assert (cfg.ctx_spec, cfg.batch_size, cfg.data_dir, cfg.save_dir) == \
        ("cpu:0,cpu:1", 8, "/d", "/s")
    assert cfg.max_iters == 6000 and cfg.resume == "latest"


@pytest.mark.parametrize("name,model,loss", [
    ("mobilefacenet-cosface.sh", "mobilefacenet", "cosface"),
    ("mobilefacenet-l2softmax.sh", "mobilefacenet", "l2softmax"),
    ("iresnet50-arcface.sh", "iresnet50", "arcface"),
    ("iresnet100-arcface.sh", "iresnet100", "arcface")])
def test_other_recipes_give_valid_configs(name, model, loss):
    cfg = _recipe_config(name)
    assert (cfg.model, cfg.loss) == (model, loss)
    if model.startswith("iresnet"):  # insightface: global batch 512, steps 100k/160k/220k
        assert cfg.batch_size * len(cfg.ctx_spec.split(",")) == 512
        assert cfg.lr_steps == [100000, 160000, 220000] and cfg.wd == 5e-4


@pytest.mark.parametrize("name,rate,classes_note", [
    ("iresnet100-cosface-glint360k.sh", 0.1, "360,232"),
    ("iresnet100-cosface-webface42m.sh", 0.2, "2,059,906")])
def test_partial_fc_recipes(name, rate, classes_note):
    # arcface_torch's glint360k_r100 / wf42m_pfc02_r100: CosFace 0.4, 128 x 8 GPUs, lr 0.1
    # poly over 20 epochs, with the class centres as a sampled PartialFC
    cfg = _recipe_config(name)
    assert (cfg.model, cfg.loss, cfg.margin_s, cfg.margin_m) == ("iresnet100", "cosface", 64.0,
                                                                0.4)
    assert cfg.uses_partial_fc and cfg.sample_rate == rate
    assert cfg.batch_size * len(cfg.contexts()) == 1024
    assert (cfg.optimizer, cfg.lr, cfg.lr_mode, cfg.lr_power, cfg.epochs) == ("sgd", 0.1, "poly",
                                                                              2.0, 20)
    assert cfg.wd == (1e-4 if "glint" in name else 5e-4)
    with open(os.path.join(REPO, "gluonfr", "engine", "recipes",
                           name.replace(".sh", ".toml"))) as f:
        assert f"({classes_note} identities" in f.read()
    cfg = _recipe_config(name, ["--kvstore", "dist_device_sync"], SAMPLE_RATE="0.3", GPUS="0,1")
    assert (cfg.sample_rate, cfg.kvstore, cfg.ctx_spec) == (0.3, "dist_device_sync", "gpu:0,gpu:1")


def test_input_size_reaches_the_model_and_the_loader(faces, tmp_path):
    # MobileFaceNet at 32x32: the loader resizes the 112 px faces, the GDC kernel is 2x2
    res = train(_cfg(faces, tmp_path, model="mobilefacenet", input_size=32, batch_size=8,
                     max_iters=2, warmup_iters=0, loss_warmup_iters=0, save_interval=2))
    params = _load(os.path.join(res["save_dir"], "mobilefacenet-2.params"))
    kernels = {v.shape[2:] for k, v in params.items() if v.ndim == 4 and v.shape[1] == 1}
    assert (2, 2) in kernels and (7, 7) not in kernels  # depthwise kernels: 3x3 and the GDC
    with pytest.raises(ValueError, match="input_size"):
        _cfg(faces, tmp_path, input_size=100)


def test_micro_batches_match_the_whole_batch(faces, tmp_path):
    # the tiny backbone has no BatchNorm: accumulating the gradients of 4 chunks of 8 is the
    # gradient of the batch of 32, so the parameters agree up to float summation order
    kw = dict(max_iters=4, loss_warmup_iters=2, lr=0.01, save_interval=4, warmup_iters=0,
              lr_mode="step", batch_size=32)
    rec = Record()
    whole = train(_cfg(faces, tmp_path / "whole", micro_batch=0, **kw), callbacks=[rec])
    chunked = train(_cfg(faces, tmp_path / "chunked", micro_batch=8, **kw))
    for suffix in (".params", "-head.params"):
        a = _load(os.path.join(whole["save_dir"], f"{TAG}-4{suffix}"))
        b = _load(os.path.join(chunked["save_dir"], f"{TAG}-4{suffix}"))
        assert sorted(a) == sorted(b)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert chunked["last_stats"]["loss"] == pytest.approx(whole["last_stats"]["loss"],
                                                          rel=1e-4)
    # not vacuous: training moved the backbone away from its initial values
    moved = _load(os.path.join(whole["save_dir"], f"{TAG}-4.params"))
    assert not np.isclose(sum(np.abs(v).sum() for v in moved.values()),
                          sum(np.abs(v).sum() for v in rec.initial.values()), rtol=1e-6)
    with pytest.raises(ValueError, match="micro_batch"):
        _cfg(faces, tmp_path, batch_size=32, micro_batch=5)


@pytest.mark.parametrize("batch,ctx,micro,chunks", [
    (64, "cpu:0", None, 4),      # the CPU default: chunks of 16
    (24, "cpu:0", None, 2),      # 16 does not divide 24: the largest divisor <= 16 is 12
    (22, "cpu:0", None, 2),      # 11
    (17, "cpu:0", None, 1),      # no divisor in 8..16: whole batches, never BatchNorm over 1
    (16, "cpu:0", None, 1),
    (64, "gpu:0,gpu:1", None, 1),  # GPUs: whole batches
    (64, "cpu:0", 0, 1),         # explicit whole batches
    (32, "cpu:0", 8, 4),
])
def test_default_micro_batches(faces, tmp_path, batch, ctx, micro, chunks):
    cfg = _cfg(faces, tmp_path, batch_size=batch, ctx=ctx, micro_batch=micro)
    assert cfg.chunks_per_device() == chunks


def _run_from(cfg, weight=None):
    """Build a TrainLoop, optionally give its Partial FC these centres, train it."""
    loop = TrainLoop(cfg)
    if weight is not None:
        loop.pfc.set_full_weight(weight)
    return loop, loop.run()


def test_partial_fc_over_two_contexts_trains_like_the_replicated_head(faces, tmp_path):
    # the loss warm-up (NormFace, iterations 1-2) and ArcFace, momentum and weight decay
    kw = dict(max_iters=5, loss_warmup_iters=2, lr=0.01, save_interval=5, warmup_iters=0,
              lr_mode="step", micro_batch=0, head_wd_mult=2.0, head_lr_mult=0.5)
    ref_loop, ref = _run_from(_cfg(faces, tmp_path / "ref", ctx="cpu:0", batch_size=32, **kw))
    start = TrainLoop(_cfg(faces, tmp_path / "init", ctx="cpu:0", batch_size=32, **kw))
    centres = start.main_head.classifier.weight.data().asnumpy()  # the replicated start
    loop, pfc = _run_from(_cfg(faces, tmp_path / "pfc", ctx="cpu:0,cpu:1", batch_size=16,
                               partial_fc=True, **kw), weight=centres)
    assert [r[1] for r in loop.pfc.ranges] == [30, 30]
    _assert_close = lambda a, b, k: np.testing.assert_allclose(  # noqa: E731
        a, b, rtol=0, atol=1e-4 * np.abs(a).max() + 1e-7, err_msg=k)
    a = _load(os.path.join(ref["save_dir"], f"{TAG}-5.params"))
    b = _load(os.path.join(pfc["save_dir"], f"{TAG}-5.params"))
    for k in a:
        _assert_close(a[k], b[k], k)
    head = _load(os.path.join(ref["save_dir"], f"{TAG}-5-head.params"))
    (weight,) = head.values()
    merged = merge_classifier(pfc["save_dir"])
    _assert_close(weight, merged, "centres")
    assert np.abs(merged - centres).max() > 1e-3  # the centres moved
    assert ref["last_stats"]["loss"] == pytest.approx(pfc["last_stats"]["loss"], rel=1e-4)


def test_sample_rate_half_trains_logs_and_resumes_exactly(faces, tmp_path):
    kw = dict(ctx="cpu:0,cpu:1", batch_size=16, sample_rate=0.5, max_iters=6,
              save_interval=3, loss_warmup_iters=0, warmup_iters=0, lr_mode="step")
    full = train(_cfg(faces, tmp_path / "full", **kw))
    with open(os.path.join(full["save_dir"], "log.txt")) as f:
        log = f.read()
    assert "sampled " in log and " MiB" in log
    # at least half of each 30-class slice (more when the batch has more positives there)
    assert 30 <= full["last_stats"]["sampled_classes"] <= 60
    first = os.path.join(full["save_dir"], f"{TAG}-3.json")
    again = train(_cfg(faces, tmp_path / "again", resume=first, **kw))
    assert again["trained_iterations"] == 3
    for suffix in (".params", ".states"):
        _assert_same(_load(os.path.join(full["save_dir"], f"{TAG}-6{suffix}")),
                     _load(os.path.join(again["save_dir"], f"{TAG}-6{suffix}")), atol=1e-6)
    np.testing.assert_allclose(merge_classifier(again["save_dir"]),
                               merge_classifier(full["save_dir"]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="--resume .* do not fit"):
        train(_cfg(faces, tmp_path / "bad", resume=first, **dict(kw, sample_rate=1.0)))
