"""gluon-face 1.0.2's networks and files: architectures, import_model(fmt='gluon-face'), parity.

The fixtures in tests/fixtures/gluonface were written by gluon-face 1.0.2 itself
(tests/fixtures/make_gluonface_fixtures.py, run in a venv with PyPI's gluonfr==1.0.2):
its MobileFaceNet saved whole with a 10-class classifier, its l_se_resnet18v2 saved as
``net.features`` and exported (symbol + params), BatchNorm statistics from training-mode
passes, and gluon-face's own outputs for a fixed input divided by 255.
"""
import json
import lzma
import os
import shutil
import subprocess

from gluonfr.model_zoo import get_model, get_model_list, import_model
from gluonfr.model_zoo.importers import ImportFormatError, detect_format
from gluonfr.model_zoo.registry import get_constructor

import mxnet as mx
import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gluonface")
# opt-in (minutes of CPU): GLUONFR_BASELINE_VENV=/path/to/venv with PyPI gluonfr==1.0.2
BASELINE_VENV = os.environ.get("GLUONFR_BASELINE_VENV", "")
GLUONFACE = {"mobilefacenet", "l_se_resnet18v2", "l_se_resnet50v2", "l_se_resnet101v2",
             "attention_facenet", "attentionfacenet56", "attentionfacenet92"}


def _unpack(tmp_path, *names):
    """Decompress committed ``.xz`` fixtures into ``tmp_path``; returns the paths."""
    out = []
    for name in names:
        path = os.path.join(tmp_path, name)
        with lzma.open(os.path.join(FIXTURES, name + ".xz"), "rb") as src, \
                open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        out.append(path)
    return out


def _io(stem):
    with np.load(os.path.join(FIXTURES, f"{stem}-io.npz")) as f:
        return {k: f[k] for k in f.files}


def _rel_max_abs(ours, ref):
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _check_parity(net, io):
    out = net(mx.nd.array(io["input"].astype(np.float32))).asnumpy()
    assert out.shape == io["embedding"].shape
    assert _rel_max_abs(out, io["embedding"]) < 1e-4
    net.hybridize(static_alloc=True)
    out = net(mx.nd.array(io["input"].astype(np.float32))).asnumpy()
    assert _rel_max_abs(out, io["embedding"]) < 1e-4


def test_registered_names():
    names = set(get_model_list())
    assert {f"gluonface_{n}" for n in GLUONFACE} <= names


def test_structural_names_and_shapes_equal_gluonface_for_every_network():
    # shapes.json: gluon-face's own _collect_params_with_prefix() of each registered network
    with lzma.open(os.path.join(FIXTURES, "shapes.json.xz"), "rt") as f:
        reference = json.load(f)
    assert set(reference) == GLUONFACE
    for name, shapes in reference.items():
        net = get_constructor(f"gluonface_{name}")()  # built, not initialised: no memory
        ours = {k: list(p.shape) for k, p in net._collect_params_with_prefix().items()}
        assert ours == shapes, name


def test_fixture_batchnorm_statistics_are_away_from_0_and_1(tmp_path):
    (path,) = _unpack(tmp_path, "mobilefacenet.params")
    arrays = mx.nd.load(path)
    means = [v.asnumpy() for k, v in arrays.items() if k.endswith("running_mean")]
    variances = [v.asnumpy() for k, v in arrays.items() if k.endswith("running_var")]
    assert min(np.abs(m).max() for m in means) > 1e-3
    assert min(np.abs(v - 1).max() for v in variances) > 1e-2


def test_mobilefacenet_whole_net_with_classifier(tmp_path):
    (path,) = _unpack(tmp_path, "mobilefacenet.params")
    assert detect_format(path) == "gluon-face"
    net = import_model(path)
    assert net.import_info["name"] == "gluonface_mobilefacenet"
    assert net.import_info["fmt"] == "gluon-face"
    assert net.import_info["classes"] == 10
    assert "gluon-face preprocessing" in net.import_info["preprocessing"]
    assert net.embedding_size == 128
    _check_parity(net, _io("mobilefacenet"))


def test_se_resnet_features_only(tmp_path):
    (path,) = _unpack(tmp_path, "l_se_resnet18v2-features.params")
    net = import_model(path, fmt="gluon-face")
    assert net.import_info["name"] == "gluonface_l_se_resnet18v2"
    assert net.import_info["kwargs"] == {"embedding_size": 512}
    with pytest.raises(ValueError, match="128-d"):
        get_model("gluonface_mobilefacenet", embedding_size=64)
    assert net.import_info["classes"] is None
    _check_parity(net, _io("l_se_resnet18v2-features"))


def test_se_resnet_exported_symbol(tmp_path):
    symbol, _ = _unpack(tmp_path, "l_se_resnet18v2-export-symbol.json",
                        "l_se_resnet18v2-export-0000.params")
    assert detect_format(symbol) == "gluon-face"
    for source in (symbol, symbol[:-len("-symbol.json")] + ",0"):
        net = import_model(source, fmt="gluon-face")
        assert net.import_info["name"] == "gluonface_l_se_resnet18v2"
        _check_parity(net, _io("l_se_resnet18v2-export"))


def test_exported_whole_net_drops_its_classifier(tmp_path):
    # the whole FrBase exported (gluon-face's issue #12: embedding and cosines as outputs)
    net = get_model("gluonface_mobilefacenet", classes=7, weight_norm=True, feature_norm=True)
    x = mx.nd.array(_io("mobilefacenet")["input"].astype(np.float32))
    net.hybridize()
    emb, _ = net(x)
    net.export(str(tmp_path / "whole"))
    imported = import_model(str(tmp_path / "whole-symbol.json"), fmt="gluon-face")
    assert imported.import_info["classes"] == 7
    np.testing.assert_array_equal(imported(x).asnumpy(), emb.asnumpy())


def test_imported_net_round_trips_through_its_own_file(tmp_path):
    (path,) = _unpack(tmp_path, "mobilefacenet.params")
    net = import_model(path)
    mine = os.path.join(tmp_path, "mine.params")
    net.save_parameters(mine)
    again = get_model("gluonface_mobilefacenet")
    again.load_parameters(mine)
    x = mx.nd.array(_io("mobilefacenet")["input"].astype(np.float32))
    np.testing.assert_array_equal(again(x).asnumpy(), net(x).asnumpy())


def test_float16_file_loads_as_float32(tmp_path):
    # gluon-face's --dtype float16 cast the whole net before saving it
    (path,) = _unpack(tmp_path, "l_se_resnet18v2-features.params")
    half = os.path.join(tmp_path, "half.params")
    mx.nd.save(half, {k: v.astype("float16") for k, v in mx.nd.load(path).items()})
    net = import_model(half, fmt="gluon-face")
    assert all(p.data().dtype == np.float32 for p in net.collect_params().values())
    ref = import_model(path, fmt="gluon-face")
    x = mx.nd.array(_io("l_se_resnet18v2-features")["input"].astype(np.float32))
    ours, full = net(x).asnumpy(), ref(x).asnumpy()
    assert 0 < _rel_max_abs(ours, full) < 2e-2  # only the float16 rounding of the weights


def test_gluonfr_import_stores_it_with_a_gluonface_card(tmp_path, capsys):
    from gluonfr.cli import import_
    from gluonfr.model_zoo import get_model_card

    (path,) = _unpack(tmp_path, "mobilefacenet.params")
    root = str(tmp_path / "store")
    assert import_.main([path, "--root", root]) == 0
    assert "get_model('gluonface_mobilefacenet', pretrained=True)" in capsys.readouterr().out
    card = get_model_card("gluonface_mobilefacenet", root=root)
    assert "gluon-face preprocessing" in card["preprocessing"]
    assert card["format"] == "gluon-face" and card["embedding_size"] == 128
    assert card["input"]["normalisation"].startswith("(x - 0) * 0.003921568627")
    net = get_model("gluonface_mobilefacenet", pretrained=True, root=root)
    _check_parity(net, _io("mobilefacenet"))


def test_not_a_gluonface_network_names_the_file_and_the_nearest(tmp_path):
    ours = os.path.join(tmp_path, "gluonfr-mobilefacenet.params")
    get_model("mobilefacenet").save_parameters(ours)
    with pytest.raises(ImportFormatError, match="gluonfr-mobilefacenet.params: not a gluon-face"
                                               ".*nearest: gluonface_"):
        import_model(ours, fmt="gluon-face")
    # a gluon-face file with one layer's shape changed: the parameter is named
    (path,) = _unpack(tmp_path, "l_se_resnet18v2-features.params")
    arrays = mx.nd.load(path)
    arrays["0.gamma"] = mx.nd.ones((4,))
    broken = os.path.join(tmp_path, "broken.params")
    mx.nd.save(broken, arrays)
    with pytest.raises(ImportFormatError, match=r"nearest: gluonface_l_se_resnet18v2 "
                                                r"\(features.0.gamma has shape \(4,\)"):
        import_model(broken, fmt="gluon-face")
    junk = os.path.join(tmp_path, "junk.params")
    with open(junk, "wb") as f:
        f.write(b"not a parameter file")
    with pytest.raises(ImportFormatError, match="junk.params: not an MXNet parameter file"):
        import_model(junk, fmt="gluon-face")


def test_other_embedding_and_input_sizes():
    net = get_model("gluonface_l_se_resnet50v2", embedding_size=256)
    assert net(mx.nd.zeros((1, 3, 112, 112))).shape == (1, 256)
    # gluonfr-train --input-size: the GDConv covers the final map (4x4 at 64)
    net = get_model("gluonface_mobilefacenet", input_size=64)
    assert net.features[8][0].weight.shape == (512, 1, 4, 4)
    assert net(mx.nd.zeros((2, 3, 64, 64))).shape == (2, 128)
    with pytest.raises(ValueError, match="multiples of 16"):
        get_model("gluonface_l_se_resnet18v2", input_size=100)


@pytest.mark.slow
@pytest.mark.skipif(not BASELINE_VENV or not os.path.isfile(os.path.join(BASELINE_VENV, "bin",
                                                                         "python")),
                    reason="set GLUONFR_BASELINE_VENV to a venv with gluon-face 1.0.2")
def test_attention_net_parity_with_gluonface_generated_now(tmp_path):
    script = os.path.join(os.path.dirname(FIXTURES), "make_gluonface_fixtures.py")
    subprocess.run([os.path.join(BASELINE_VENV, "bin", "python"), "-I", script, str(tmp_path),
                    "--whole", "attentionfacenet56", "--features", "--export"],
                   check=True, cwd=str(tmp_path))
    net = import_model(os.path.join(tmp_path, "attentionfacenet56.params"))
    assert net.import_info["name"] == "gluonface_attentionfacenet56"
    with np.load(os.path.join(tmp_path, "attentionfacenet56-io.npz")) as f:
        io = {k: f[k] for k in f.files}
    _check_parity(net, io)
