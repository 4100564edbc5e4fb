"""The loss registry: names, kinds, close-match errors, and training's --loss reading it."""
import argparse

from gluonfr.engine import TrainConfig, add_arguments, config_from_args
from gluonfr.engine.head import build_heads
from gluonfr.loss import (
    ArcFaceLoss,
    CosFaceLoss,
    get_loss,
    get_loss_class,
    get_loss_list,
    loss_kind,
    register_loss,
)
from gluonfr.loss.registry import _LOSSES
from gluonfr.nn import NormDense

import mxnet as mx
import numpy as np
import pytest


def test_existing_heads_are_registered_with_their_kinds():
    for name in ("arcface", "cosface", "combined", "normface"):
        assert loss_kind(name) == "cosine"
    assert loss_kind("l2softmax") == "embedding" and loss_kind("softmax") == "logits"
    assert get_loss_list() == sorted(get_loss_list())
    assert set(get_loss_list("cosine")) <= set(get_loss_list())
    assert "l2softmax" not in get_loss_list("cosine")


def test_get_loss_builds_with_kwargs_and_is_case_insensitive():
    loss = get_loss("ArcFace", s=32.0, m=0.3)
    assert isinstance(loss, ArcFaceLoss) and loss.s == 32.0 and loss._m == 0.3
    assert get_loss_class("COSFACE") is CosFaceLoss


def test_unknown_name_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown loss 'arcfcae'.*Did you mean arcface"):
        get_loss("arcfcae")
    with pytest.raises(ValueError, match="kind must be one of"):
        get_loss_list("margin")


def test_register_refuses_a_second_owner_of_a_name():
    @register_loss(name="_test_dummy")
    class Dummy(ArcFaceLoss):
        pass

    try:
        assert get_loss_class("_test_dummy") is Dummy
        register_loss(Dummy, name="_test_dummy")  # the same class again is fine
        with pytest.raises(ValueError, match="already registered"):
            register_loss(name="_test_dummy")(CosFaceLoss)
        with pytest.raises(ValueError, match="kind must be"):
            register_loss(name="_x", kind="nope")
    finally:
        _LOSSES.pop("_test_dummy", None)


def _parse(argv):
    return config_from_args(add_arguments(argparse.ArgumentParser()).parse_args(argv))


def test_train_flags_reach_the_registered_head():
    cfg = _parse(["--loss", "cosface", "--max-iters", "3", "-s", "30", "-m", "0.4"])
    head, _ = build_heads(cfg, 11, 8)
    assert isinstance(head.loss, CosFaceLoss) and (head.loss.s, head.loss._m3) == (30.0, 0.4)
    assert isinstance(head.classifier, NormDense)
    cfg = _parse(["--loss", "arcface", "--max-iters", "3", "--loss-kwargs", "easy_margin=true"])
    assert cfg.loss_kwargs == {"easy_margin": True}
    assert build_heads(cfg, 11, 8)[0].loss._easy_margin is True
    # an unknown head is refused naming the close matches
    with pytest.raises(ValueError, match="--loss=.*Did you mean"):
        _parse(["--loss", "cosfce", "--max-iters", "3"])


def test_bad_loss_kwargs_are_a_clear_error():
    cfg = TrainConfig(loss="arcface", max_iters=1, loss_kwargs={"nope": 1})
    with pytest.raises(ValueError, match="--loss arcface"):
        build_heads(cfg, 5, 4)
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        from gluonfr.engine.config import parse_kwargs
        parse_kwargs("t")


def test_sub_centre_norm_dense_takes_the_max_over_k_centres():
    rng = np.random.RandomState(0)
    x, w = rng.randn(4, 6), rng.randn(5 * 3, 6)
    layer = NormDense(5, 6, centers_per_class=3)
    layer.initialize()
    layer.weight.set_data(mx.nd.array(w))
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ \
        (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    want = cos.reshape(4, 5, 3).max(axis=2)
    for hybrid in (False, True):
        if hybrid:
            layer.hybridize()
        np.testing.assert_allclose(layer(mx.nd.array(x)).asnumpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="centers_per_class"):
        NormDense(5, 6, centers_per_class=0)
