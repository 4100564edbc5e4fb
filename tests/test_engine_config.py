"""Configuration: one answer to "is this a GPU run", --config files and the recipes, the new
optimisation flags, and the PReLU formulation chosen per device."""
import argparse
import json

import gluonfr  # noqa: F401
from gluonfr.engine import TrainConfig, add_arguments, config_from_args
from gluonfr.engine.config import load_config_file, recipe_names

import mxnet as mx
import pytest


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


@pytest.mark.parametrize("ctx,gpus", [("0,1", None), ("gpu:0,gpu:1", None), ("cpu", "0,1"),
                                      (" 1 ", None)])
def test_bare_gpu_ids_make_a_gpu_run(ctx, gpus):
    cfg = TrainConfig(ctx=ctx, gpus=gpus, batch_size=64, max_iters=10, dtype="float16")
    assert cfg.uses_gpu
    assert all(c.device_type == "gpu" for c in cfg.contexts())
    assert cfg.chunks_per_device() == 1  # GPUs run whole batches, not CPU micro-batches


def test_cpu_runs_stay_cpu_runs():
    cfg = TrainConfig(ctx="cpu:0,cpu:1", batch_size=64, max_iters=10)
    assert not cfg.uses_gpu and cfg.chunks_per_device() == 4
    with pytest.raises(ValueError, match="float16 training needs GPUs"):
        TrainConfig(ctx="cpu:0", max_iters=10, dtype="float16")
    with pytest.raises(ValueError, match="not a device"):
        TrainConfig(ctx="tpu:0", max_iters=10)


def test_config_file_values_and_flags_that_override_them(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('# a recipe\nmodel = "iresnet50"\nlr = 0.35\nlr_steps = [10, 20]\n'
                    'val_targets = ["lfw"]\nmax_iters = 30\nno_wd = true\n'
                    'loss_kwargs = {easy_margin = true}\n')
    cfg = _parse(["--config", str(path)])
    assert (cfg.model, cfg.lr, cfg.lr_steps, cfg.val_targets, cfg.max_iters, cfg.no_wd) == \
        ("iresnet50", 0.35, [10, 20], ["lfw"], 30, True)
    assert cfg.loss_kwargs == {"easy_margin": True}
    # a flag wins even when it spells the built-in default (lr 0.1, weight decay on everything)
    cfg = _parse(["--config", str(path), "--lr", "0.1", "--wd-all", "--lr-steps", "5"])
    assert (cfg.lr, cfg.no_wd, cfg.lr_steps, cfg.model) == (0.1, False, [5], "iresnet50")
    # the earlier spelling of --wd-all still works, without being offered in --help
    assert _parse(["--config", str(path), "--no-no-wd"]).no_wd is False
    # JSON works the same
    (tmp_path / "run.json").write_text(json.dumps({"lr": 0.2, "max_iters": 7}))
    assert (_parse(["-c", str(tmp_path / "run.json")]).lr, 7) == (0.2, 7)


def test_bad_config_files_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = 0.1\nmax_iters = 3\n")
    with pytest.raises(ValueError, match=r"bad\.toml: unknown field 'learning_rate'"):
        _parse(["--config", str(bad)])
    bad.write_text("lr = = 0.1\n")
    with pytest.raises(ValueError, match=r"bad\.toml: not valid TOML"):
        _parse(["--config", str(bad)])
    with pytest.raises(ValueError, match=r"no-such-recipe: no such file.*mobilefacenet-arcface"):
        load_config_file("no-such-recipe")


def test_shipped_recipes_are_readable_configs():
    assert {"mobilefacenet-arcface", "iresnet50-arcface", "iresnet100-arcface"} <= \
        set(recipe_names())
    for name in recipe_names():
        path, values = load_config_file(name)
        assert path.endswith(name + ".toml")
        cfg = TrainConfig(**values)  # a complete, valid run on its own
        assert cfg.uses_gpu and name.startswith(cfg.model)


def test_new_optimisation_and_data_flags():
    cfg = _parse(["--clip-grad", "5", "--fc-lr-mult", "2", "--fc-wd-mult", "3",
                  "--skip-corrupt", "10", "--strict-data", "--overwrite", "--max-iters", "3"])
    assert (cfg.clip_grad, cfg.head_lr_mult, cfg.head_wd_mult) == (5.0, 2.0, 3.0)
    assert (cfg.skip_corrupt, cfg.strict_data, cfg.overwrite) == (10, True, True)
    default = _parse(["--max-iters", "3"])
    assert (default.clip_grad, default.skip_corrupt, default.strict_data) == (0.0, 0, False)
    with pytest.raises(ValueError, match="--clip-grad=-1.0"):
        _parse(["--clip-grad", "-1", "--max-iters", "3"])


def _traced_ops(block):
    out = block(mx.sym.var("data"))
    return {node["op"] for node in json.loads(out.tojson())["nodes"]}


def test_prelu_uses_the_onednn_form_on_cpu_and_the_native_op_on_gpu(monkeypatch):
    from gluonfr.nn import PReLU

    block = PReLU(4)
    block.initialize(ctx=mx.cpu())
    assert PReLU.native_for([mx.cpu()]) is False
    assert PReLU.native_for([mx.gpu(0), mx.gpu(1)]) is True
    assert PReLU.native_for([mx.cpu(), mx.gpu(0)]) is False  # mixed: the CPU needs oneDNN
    assert "BatchNorm" in _traced_ops(block) and "LeakyReLU" not in _traced_ops(block)
    # the same block with its parameters on GPUs (no GPU here: only the device list changes)
    monkeypatch.setattr(type(block.alpha), "list_ctx", lambda self: [mx.gpu(0)])
    ops = _traced_ops(block)
    assert "LeakyReLU" in ops and "BatchNorm" not in ops


def test_help_offers_wd_all_not_the_double_negative():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    assert "--wd-all" in text and "--no-wd" in text and "--no-no-wd" not in text
    with pytest.raises(SystemExit):  # still one switch: both spellings together are refused
        parser.parse_args(["--no-wd", "--wd-all"])


def test_sample_rate_flag_turns_partial_fc_on_and_checks_what_it_needs():
    cfg = _parse(["--sample-rate", "0.3", "--micro-batch", "0", "--max-iters", "5"])
    assert cfg.sample_rate == 0.3 and cfg.uses_partial_fc and not cfg.partial_fc
    assert _parse(["--partial-fc", "--max-iters", "5"]).uses_partial_fc
    assert not _parse(["--max-iters", "5"]).uses_partial_fc
    # whole batches by default with Partial FC, chunks of 16 on CPU otherwise
    assert TrainConfig(batch_size=64, sample_rate=0.5, max_iters=5).chunks_per_device() == 1
    assert TrainConfig(batch_size=64, max_iters=5).chunks_per_device() == 4
    for kw, name in ((dict(sample_rate=0.0), "sample_rate"),
                     (dict(sample_rate=1.5), "sample_rate"),
                     (dict(sample_rate=0.5, optimizer="adam"), "optimizer"),
                     (dict(partial_fc=True, clip_grad=5.0), "clip_grad"),
                     (dict(partial_fc=True, aux_loss="center"), "aux_loss"),
                     (dict(partial_fc=True, batch_size=64, micro_batch=16), "micro_batch")):
        with pytest.raises(ValueError, match=f"TrainConfig.{name}="):
            TrainConfig(max_iters=5, **kw)
    with pytest.raises(ValueError, match="--sample-rate=2.0"):
        _parse(["--sample-rate", "2", "--max-iters", "5"])


def test_margin_and_scale_go_to_each_loss_own_argument():
    # L2-softmax's scale and LGM's margin are both called alpha: -s must not set LGM's margin
    from gluonfr.engine.head import loss_kwargs

    lgm = TrainConfig(loss="lgm", max_iters=1, margin_s=30.0)
    assert loss_kwargs(lgm, 10, 8)["alpha"] == 0.2  # LGMLoss's default margin
    lgm = TrainConfig(loss="lgm", max_iters=1, margin_m=0.35)
    assert loss_kwargs(lgm, 10, 8)["alpha"] == 0.35
    l2 = TrainConfig(loss="l2softmax", max_iters=1, margin_s=24.0, margin_m=0.5)
    assert loss_kwargs(l2, 10, 8)["alpha"] == 24.0
    arc = TrainConfig(loss="arcface", max_iters=1, margin_s=30.0, margin_m=0.4)
    assert {k: loss_kwargs(arc, 10, 8)[k] for k in ("s", "m")} == {"s": 30.0, "m": 0.4}
