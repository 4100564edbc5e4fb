"""insightface MXNet checkpoints -> gluonfr networks, checked against MXNet running the symbol.

The checkpoints are written by MXNet's own symbol API in insightface's layout and naming
(tests/fixtures/insightface_symbols.py) with BatchNorm statistics away from 0/1; the
reference output is ``mx.mod.Module`` on the same 0..255 batch, as insightface evaluates.
"""
import json
import os
import sys

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr.model_zoo import get_model, import_model
from gluonfr.model_zoo.importers import ImportFormatError, detect_format, get_format_list
from gluonfr.model_zoo.importers.graph import GraphMismatch

import mxnet as mx
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import insightface_symbols as fx  # noqa: E402

BATCH = np.random.RandomState(7).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)


def _rel(ours, ref):
    return np.abs(ours - ref).max() / np.abs(ref).max()


def _copy_weights(src, dst, tmp_path):
    path = str(tmp_path / "copy.params")
    src.save_parameters(path)
    dst.load_parameters(path)


def _checkpoint(tmp_path, symbol, name="model", seed=0):
    prefix = str(tmp_path / name)
    fx.write_checkpoint(symbol, prefix, seed=seed)
    return prefix, fx.run_symbol(prefix, 0, BATCH)


def test_y1_mobilefacenet_equals_the_symbol(tmp_path):
    prefix, ref = _checkpoint(tmp_path, fx.fmobilefacenet())
    net = import_model(prefix + ",0")
    info = net.import_info
    assert info["name"] == "mobilefacenet" and info["fmt"] == "insightface-mxnet"
    # the body was built without eps (MXNet's 1e-3), the embedding BatchNorm with 2e-5
    assert info["kwargs"]["bn_eps"] == pytest.approx(1e-3)
    assert info["kwargs"]["embedding_eps"] == pytest.approx(2e-5)
    assert "blocks" not in info["kwargs"] and net.embedding_size == 128
    assert _rel(net(mx.nd.array(BATCH)).asnumpy(), ref) < 1e-4
    # the imported eps matter: the same weights under the default-eps IResNet-style 2e-5
    # body would differ by far more than the tolerance
    wrong = get_model("mobilefacenet", **dict(info["kwargs"], bn_eps=2e-5))
    _copy_weights(net, wrong, tmp_path)
    assert _rel(wrong(mx.nd.array(BATCH)).asnumpy(), ref) > 1e-3


def test_2018_fc1_weight_naming_and_symbol_path(tmp_path):
    # model-y1-test2 was written by the 2018 code: the FC weight is fc1_weight
    prefix, ref = _checkpoint(tmp_path, fx.fmobilefacenet(blocks=(2, 1, 1, 1),
                                                          fc_weight_name="fc1_weight"))
    saved = mx.nd.load(prefix + "-0000.params")
    assert "arg:fc1_weight" in saved and "arg:pre_fc1_weight" not in saved
    net = import_model(prefix + "-symbol.json")  # the params file found beside it
    assert net.import_info["kwargs"]["blocks"] == (2, 1, 1, 1)
    assert _rel(net(mx.nd.array(BATCH)).asnumpy(), ref) < 1e-4


def test_iresnet50_layout_reads_depth_and_widths(tmp_path):
    # iresnet50's unit counts, narrow widths: the converter reads both from the file
    prefix, ref = _checkpoint(tmp_path, fx.fresnet(units=(3, 4, 14, 3),
                                                   filters=(8, 8, 16, 32, 64), emb_size=32))
    net = import_model(prefix + ",0")
    info = net.import_info
    assert info["name"] == "iresnet50" and "units" not in info["kwargs"]
    assert info["kwargs"]["channels"] == (8, 16, 32, 64)
    assert info["kwargs"]["bn_eps"] == pytest.approx(2e-5)
    assert _rel(net(mx.nd.array(BATCH)).asnumpy(), ref) < 1e-4
    # the same network is rebuilt by name + kwargs (what the local store records)
    again = get_model(info["name"], **info["kwargs"])
    _copy_weights(net, again, tmp_path)
    assert np.array_equal(again(mx.nd.array(BATCH)).asnumpy(),
                          net(mx.nd.array(BATCH)).asnumpy())


def test_se_units_and_relu_activations(tmp_path):
    prefix, ref = _checkpoint(tmp_path, fx.fresnet(units=(1, 2, 1, 1), emb_size=16,
                                                   filters=(16, 16, 32, 32, 64), use_se=True))
    net = import_model(prefix + ",0")
    assert net.import_info["name"] == "se_iresnet50"
    assert net.import_info["kwargs"]["units"] == (1, 2, 1, 1)
    assert _rel(net(mx.nd.array(BATCH)).asnumpy(), ref) < 1e-4

    prefix, ref = _checkpoint(tmp_path, fx.fresnet(units=(1, 1, 1, 1), emb_size=16,
                                                   filters=(8, 8, 16, 16, 16),
                                                   act_type="relu"), name="relu")
    net = import_model(prefix + ",0")
    assert _rel(net(mx.nd.array(BATCH)).asnumpy(), ref) < 1e-4


def test_a_symbol_that_does_not_fit_names_the_node(tmp_path):
    # a max-pool after the stem (torchvision-style ResNet) is no IR-ResNet
    data = mx.sym.Variable("data")
    body = mx.sym.Convolution(data=data, num_filter=8, kernel=(3, 3), pad=(1, 1),
                              no_bias=True, name="conv0")
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, name="bn0")
    body = mx.sym.LeakyReLU(data=body, act_type="prelu", name="relu0")
    body = mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pool_type="max",
                          name="pool0")
    body = mx.sym.FullyConnected(data=body, num_hidden=8, name="pre_fc1")
    symbol = mx.sym.BatchNorm(data=body, fix_gamma=True, name="fc1")
    prefix = str(tmp_path / "odd")
    fx.write_checkpoint(symbol, prefix)
    with pytest.raises(GraphMismatch, match=r"'pool0' \(Pooling\).*scripts/eval.py --symbol"):
        import_model(prefix + ",0")


def test_missing_parameter_and_missing_files(tmp_path):
    prefix = str(tmp_path / "model")
    args, auxs = fx.write_checkpoint(fx.fresnet(units=(1, 1, 1, 1), emb_size=8,
                                                filters=(8, 8, 8, 8, 8)), prefix)
    del args["stage2_unit1_conv1_weight"]
    mx.model.save_checkpoint(prefix, 1, fx.fresnet(units=(1, 1, 1, 1), emb_size=8,
                                                   filters=(8, 8, 8, 8, 8)), args, auxs)
    with pytest.raises(ImportFormatError, match="stage2_unit1_conv1_weight"):
        import_model(prefix + ",1")
    with pytest.raises(ImportFormatError, match="model-0007.params does not exist"):
        import_model(prefix + ",7")
    with open(prefix + "-symbol.json") as f:
        assert json.load(f)["nodes"]


def test_format_detection(tmp_path):
    assert "insightface-mxnet" in get_format_list()
    prefix = str(tmp_path / "model")
    fx.write_checkpoint(fx.fresnet(units=(1, 1, 1, 1), emb_size=8, filters=(8,) * 5), prefix)
    assert detect_format(prefix + ",0") == "insightface-mxnet"
    assert detect_format(prefix + "-symbol.json") == "insightface-mxnet"
    with pytest.raises(ImportFormatError, match="not recognised"):
        detect_format(str(tmp_path / "nothing.bin"))
    with pytest.raises(ImportFormatError, match="unknown import format 'caffe'"):
        import_model(prefix + ",0", fmt="caffe")
