"""The embedding networks against their specification (formats-and-protocols.md §5).

The big IR-ResNets are checked symbolically (shapes, operator counts, parameter and
multiply-add counts need no initialised weights); forward passes run on small batches of
MobileFaceNet, IR-ResNet-18 and reduced IR / SE-IR configurations.
"""
import json
import os

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr.model_zoo import IResNet, IRUnit, get_model, get_model_list, register_model, registry
from gluonfr.model_zoo.mobilefacenet import Bottleneck, MobileFaceNet
from gluonfr.nn import native_prelu
from gluonfr.nn.blocks import InputNormalize
from gluonfr.utils import summary

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

ALL_MODELS = ["mobilefacenet", "iresnet18", "iresnet34", "iresnet50", "iresnet100",
              "se_iresnet50", "se_iresnet100"]

# (params, multiply-adds at 112x112): the figures and the insightface / paper counts
FIGURES = {
    "mobilefacenet": (1.00e6, 221e6),
    "iresnet18": (24.0e6, 2.61e9),
    "iresnet34": (34.1e6, 4.46e9),
    "iresnet50": (43.6e6, 6.31e9),
    "iresnet100": (65.2e6, 12.09e9),
}
IR_UNITS = {"iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3),
            "iresnet100": (3, 13, 30, 3), "se_iresnet50": (3, 4, 14, 3),
            "se_iresnet100": (3, 13, 30, 3)}


def _build(name, **kwargs):
    """The network without initialising it (enough for symbolic checks)."""
    return registry.get_constructor(name)(**kwargs)


def _graph(net, input_shape=(1, 3, 112, 112)):
    with native_prelu(net):  # the textbook graph (PReLU as one op)
        nodes = json.loads(net(mx.sym.var("data")).tojson())["nodes"]
    return [n for n in nodes if n["op"] != "null"]


def _ops(nodes, op, **attrs):
    return [n for n in nodes if n["op"] == op
            and all(n.get("attrs", {}).get(k) == v for k, v in attrs.items())]


_RANDOM_RANGES = {"gamma": (0.5, 1.5), "beta": (-0.3, 0.3), "running_mean": (-0.3, 0.3),
                  "running_var": (0.5, 1.5), "alpha": (0.05, 0.4)}


def _randomize(net, seed=0):
    """Non-trivial BatchNorm statistics and PReLU slopes so that every term shows."""
    rng = np.random.RandomState(seed)
    for name, p in net.collect_params().items():
        for suffix, (low, high) in _RANDOM_RANGES.items():
            if name.endswith(suffix):
                p.set_data(mx.nd.array(rng.uniform(low, high, p.shape)))


def _close(actual, expected, rtol=1e-5):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.compat
def test_registry_names_and_unknown_name():
    assert set(ALL_MODELS) <= set(get_model_list())
    assert get_model_list() == sorted(get_model_list())
    with pytest.raises(ValueError, match="iresnet50") as err:
        get_model("iresnet05")
    assert "mobilefacenet" in str(err.value)  # the known names are listed too
    with pytest.raises(ValueError, match="already registered"):
        register_model(lambda **kw: None, name="mobilefacenet")


@pytest.mark.compat
def test_register_model_adds_a_buildable_name(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model
    def tiny_mobilefacenet(**kwargs):
        return MobileFaceNet(blocks=(1, 1, 1, 1), **kwargs)

    assert "tiny_mobilefacenet" in get_model_list()
    net = get_model("Tiny_MobileFaceNet", embedding_size=8)
    assert net(mx.nd.zeros((1, 3, 112, 112))).shape == (1, 8)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_counts_and_output_shape(name):
    info = summary(_build(name), (2, 3, 112, 112), print_table=False)
    assert info["output_shape"] == (2, 128 if name == "mobilefacenet" else 512)
    if name in FIGURES:
        params, macs = FIGURES[name]
        assert abs(info["params"] - params) <= 0.01 * params
        assert abs(info["macs"] / 2 - macs) <= 0.01 * macs


def test_se_adds_exactly_the_squeeze_excitation_parameters():
    # per unit at C channels: conv C -> C/16 (+bias), C/16 PReLU slopes, conv C/16 -> C (+bias)
    def se_params(c):
        return c * (c // 16) + c // 16 + c // 16 + (c // 16) * c + c

    for depth in (50, 100):
        extra = sum(n * se_params(c) for n, c in zip(IR_UNITS[f"iresnet{depth}"],
                                                    (64, 128, 256, 512)))
        plain = summary(_build(f"iresnet{depth}"), print_table=False)["params"]
        se = summary(_build(f"se_iresnet{depth}"), print_table=False)["params"]
        assert se - plain == extra


def test_mobilefacenet_structure_matches_y1():
    nodes = _graph(_build("mobilefacenet"))
    convs = _ops(nodes, "Convolution")
    # conv_1, conv_2_dw, 15 bottlenecks x 3 (1 + 4 + 1 + 6 + 1 + 2), conv_6sep, GDC
    assert len(convs) == 49
    assert all(c["attrs"]["no_bias"] == "True" for c in convs)
    depthwise = [c for c in convs if int(c["attrs"].get("num_group", 1)) > 1]
    assert len(depthwise) == 17
    assert len([c for c in convs if c["attrs"]["stride"] == "(2, 2)"]) == 4
    gdc = convs[-1]
    assert gdc["attrs"]["kernel"] == "(7, 7)" and gdc["attrs"]["num_group"] == "512"
    assert gdc["attrs"]["pad"] == "(0, 0)"
    prelus = _ops(nodes, "LeakyReLU", act_type="prelu")
    assert len(prelus) == 33  # every conv but the 15 projections and the GDC
    assert len(_ops(nodes, "elemwise_add")) == 4 + 6 + 2
    bns = _ops(nodes, "BatchNorm")
    assert len(bns) == 50
    assert {b["attrs"]["eps"] for b in bns[:-1]} == {"0.001"}
    assert bns[-1]["attrs"]["eps"] == "2e-05" and bns[-1]["attrs"]["fix_gamma"] == "True"
    assert all(b["attrs"]["fix_gamma"] == "False" for b in bns[:-1])
    fc = _ops(nodes, "FullyConnected")
    assert len(fc) == 1 and fc[0]["attrs"]["num_hidden"] == "128"
    assert fc[0]["attrs"].get("no_bias", "False") == "False"


@pytest.mark.parametrize("name", ["iresnet50", "se_iresnet50"])
def test_iresnet_structure_matches_lresnet_e_ir(name):
    units = sum(IR_UNITS[name])
    se = name.startswith("se_")
    nodes = _graph(_build(name))
    convs = _ops(nodes, "Convolution")
    assert convs[0]["attrs"]["stride"] == "(1, 1)" and convs[0]["attrs"]["kernel"] == "(3, 3)"
    # stem + 2 per unit + one 1x1 projection per stage (+ 2 per unit for SE)
    assert len(convs) == 1 + 2 * units + 4 + (2 * units if se else 0)
    assert len([c for c in convs if c["attrs"]["stride"] == "(2, 2)"]) == 8
    assert len(_ops(nodes, "elemwise_add")) == units
    assert len(_ops(nodes, "LeakyReLU", act_type="prelu")) == 1 + units + (units if se else 0)
    assert len(_ops(nodes, "broadcast_mul")) == (units if se else 0)
    bns = _ops(nodes, "BatchNorm")
    assert len(bns) == 1 + 3 * units + 4 + 2
    assert {b["attrs"]["eps"] for b in bns} == {"2e-05"}
    assert {b["attrs"]["momentum"] for b in bns} == {"0.9"}
    assert bns[-1]["attrs"]["fix_gamma"] == "True"
    drop = _ops(nodes, "Dropout")
    assert len(drop) == 1 and drop[0]["attrs"]["p"] == "0.4"
    fc = _ops(nodes, "FullyConnected")
    assert len(fc) == 1 and fc[0]["attrs"]["num_hidden"] == "512"


def _bn(x, bn):
    g, b, m, v = (bn.params.get(k).data().asnumpy()
                  for k in ("gamma", "beta", "running_mean", "running_var"))
    eps = bn._kwargs["eps"]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps) * g.reshape(shape) \
        + b.reshape(shape)


def _prelu(x, act):
    a = act.alpha.data().asnumpy().reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, a * x)


def _conv(x, conv, stride, pad, groups=1, bias=None):
    w = conv.weight.data()
    kwargs = {"no_bias": True} if bias is None else {"bias": mx.nd.array(bias)}
    return mx.nd.Convolution(mx.nd.array(x), w, kernel=w.shape[2:], stride=(stride, stride),
                             pad=(pad, pad), num_filter=w.shape[0], num_group=groups,
                             **kwargs).asnumpy()


@pytest.mark.parametrize("stride,in_channels,use_se", [(2, 8, True), (1, 32, False)])
def test_ir_unit_computes_bn_conv_bn_prelu_conv_bn_se_plus_shortcut(stride, in_channels,
                                                                     use_se):
    unit = IRUnit(in_channels, 32, stride, use_se=use_se)
    unit.initialize(mx.init.Xavier())
    _randomize(unit, seed=stride)
    x = np.random.RandomState(3).normal(size=(2, in_channels, 8, 8)).astype(np.float32)

    out = _conv(_bn(x, unit.bn1), unit.conv1.conv, 1, 1)
    out = _prelu(_bn(out, unit.conv1.bn), unit.conv1.act)
    out = _bn(_conv(out, unit.conv2.conv, stride, 1), unit.conv2.bn)  # stride on 2nd conv
    if use_se:
        w = out.mean(axis=(2, 3), keepdims=True)
        w = _conv(w, unit.se.squeeze, 1, 0, bias=unit.se.squeeze.bias.data().asnumpy())
        w = _conv(_prelu(w, unit.se.act), unit.se.excite, 1, 0,
                  bias=unit.se.excite.bias.data().asnumpy())
        out = out / (1 + np.exp(-w))
    if stride == 1 and in_channels == 32:
        assert unit.shortcut is None
        shortcut = x
    else:
        shortcut = _bn(_conv(x, unit.shortcut.conv, stride, 0), unit.shortcut.bn)
    _close(unit(mx.nd.array(x)).asnumpy(), out + shortcut, rtol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_computes_expand_depthwise_linear_projection(stride):
    block = Bottleneck(16, 16, 32, stride)
    block.initialize(mx.init.Xavier())
    _randomize(block, seed=stride)
    x = np.random.RandomState(4).normal(size=(2, 16, 8, 8)).astype(np.float32)
    out = _prelu(_bn(_conv(x, block.expand.conv, 1, 0), block.expand.bn), block.expand.act)
    out = _prelu(_bn(_conv(out, block.depthwise.conv, stride, 1, groups=32),
                     block.depthwise.bn), block.depthwise.act)
    out = _bn(_conv(out, block.project.conv, 1, 0), block.project.bn)
    assert block.project.act is None  # linear bottleneck
    expected = out + x if stride == 1 else out
    _close(block(mx.nd.array(x)).asnumpy(), expected, rtol=1e-4)


def test_input_normalisation_in_float32_and_float16():
    x = np.array([[0, 1, 127, 127.5, 128, 200, 255]], dtype=np.float32)
    expected = (x - 127.5) / 128
    block = InputNormalize()
    block.hybridize()
    np.testing.assert_array_equal(block(mx.nd.array(x)).asnumpy(), expected)
    block.cast("float16")
    half = block(mx.nd.array(x, dtype="float16"))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.asnumpy(), expected, atol=1e-3)


def _small_nets():
    se_small = IResNet((1, 2, 1, 1), use_se=True, embedding_size=64, input_size=32)
    se_small.initialize(mx.init.Xavier())
    return {
        "mobilefacenet": (get_model("mobilefacenet"), (2, 3, 112, 112)),
        "iresnet18": (get_model("iresnet18"), (1, 3, 112, 112)),
        "se_iresnet_small": (se_small, (2, 3, 32, 32)),
    }


@pytest.mark.filterwarnings("ignore:Cannot decide type")  # SymbolBlock.imports' notice
def test_hybridized_and_exported_outputs_match_imperative(tmp_path):
    for name, (net, shape) in _small_nets().items():
        _randomize(net)
        x = mx.nd.array(np.random.RandomState(0).uniform(0, 255, shape))
        imperative = net(x).asnumpy()
        assert imperative.shape == (shape[0], net.embedding_size)
        net.hybridize(static_alloc=True, static_shape=True)
        _close(net(x).asnumpy(), imperative)
        prefix = str(tmp_path / name)
        net.export(prefix)
        imported = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                                prefix + "-0000.params")
        _close(imported(x).asnumpy(), imperative)


def test_parameters_load_into_a_differently_named_instance(tmp_path):
    a = get_model("mobilefacenet", embedding_size=32)
    b = get_model("mobilefacenet", embedding_size=32)
    assert a.prefix != b.prefix
    _randomize(a, seed=1)
    path = str(tmp_path / "m.params")
    a.save_parameters(path)
    b.load_parameters(path)
    x = mx.nd.array(np.random.RandomState(1).uniform(0, 255, (2, 3, 112, 112)))
    np.testing.assert_array_equal(a(x).asnumpy(), b(x).asnumpy())
    # the paper's 4.0 MB: 1.0M float32 parameters plus the BatchNorm statistics
    full = get_model("mobilefacenet")
    full.save_parameters(path)
    assert 3.9e6 < os.path.getsize(path) < 4.3e6


def test_initialisation_and_training_gradients():
    net = get_model("mobilefacenet", embedding_size=16, width_mult=0.5)
    params = net._collect_params_with_prefix()
    alphas = [p for k, p in params.items() if k.endswith("alpha")]
    assert len(alphas) == 33 and all(p.shape[0] > 1 for p in alphas)  # one per channel
    assert all((p.data().asnumpy() == 0.25).all() for p in alphas)
    # Xavier gaussian, fan-out, magnitude 2: std = sqrt(2 / (out_channels * kh * kw))
    w = params["features.0.conv.weight"].data().asnumpy()
    assert abs(w.std() / np.sqrt(2 / (w.shape[0] * 9)) - 1) < 0.2
    assert params["embedding_bn.gamma"].grad_req == "null"  # gamma fixed at 1
    x = mx.nd.array(np.random.RandomState(2).uniform(0, 255, (4, 3, 112, 112)))
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    for key, p in params.items():
        if p.grad_req != "null":
            assert np.abs(p.grad().asnumpy()).sum() > 0, f"no gradient reaches {key}"


def test_width_multiplier_and_embedding_size():
    info = summary(_build("mobilefacenet", width_mult=2.0, embedding_size=512),
                   print_table=False)
    assert info["output_shape"] == (1, 512)
    base = summary(_build("mobilefacenet"), print_table=False)
    assert info["macs"] > 3 * base["macs"]  # body channels doubled: ~4x in the 1x1 convs
    with pytest.raises(ValueError, match="input_size"):
        _build("iresnet18", input_size=100)


def test_float16_cast_types_every_layer():
    for name in ("mobilefacenet", "se_iresnet50"):
        net = _build(name)
        net.cast("float16")
        out = net(mx.sym.var("data", dtype="float16"))
        arg_types, out_types, aux_types = out.infer_type(data="float16")
        assert out_types == [np.float16]
        types = dict(zip(out.list_arguments(), arg_types))
        for arg, dtype in types.items():
            # BatchNorm and PReLU keep float32 scale/shift/slopes (as BatchNorm.cast does)
            expected = np.float32 if arg.endswith(("gamma", "beta", "alpha")) else np.float16
            assert dtype == expected, arg
        assert set(aux_types) == {np.float32}
