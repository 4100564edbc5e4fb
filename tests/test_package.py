import os
import subprocess
import sys

import gluonfr
from _gluonfr_numpy_hook import REMOVED_ALIASES
from gluonfr.utils import summary

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

pytestmark = pytest.mark.compat


def test_version_and_numpy_aliases():
    # a successor of PyPI's gluonfr 1.0.2 (gluon-face): pip install -U must not go back to it
    assert tuple(int(v) for v in gluonfr.__version__.split(".")) >= (2, 0, 0)
    for name, builtin in REMOVED_ALIASES.items():
        assert getattr(np, name) is builtin


def test_import_in_fresh_interpreter_before_mxnet():
    # gluonfr must be importable first thing, with nothing else having touched numpy/mxnet
    code = "import gluonfr, mxnet, numpy; print(mxnet.__version__, numpy.__version__)"
    out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning:numpy", "-c", code],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("1.9.1 ")


def test_summary_counts_conv_depthwise_dense_by_hand():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1, use_bias=False),       # 8*3*3*3 = 216 params
            nn.BatchNorm(),                                    # gamma + beta = 16
            nn.PReLU(in_channels=8),                           # 8 slopes
            nn.Conv2D(8, 3, strides=2, padding=1, groups=8),   # depthwise: 8*9 + 8 bias = 80
            nn.Dense(10))                                      # 8*8*8*10 + 10 = 5130
    info = summary(net, (1, 3, 16, 16), print_table=False)
    assert info["params"] == 216 + 16 + 8 + 80 + 5130
    assert info["aux"] == 16
    # conv: every one of 8*16*16 outputs takes 3*9 MACs; depthwise: 8*8*8 outputs, 9 each
    assert info["macs"] == 8 * 16 * 16 * 27 + 8 * 8 * 8 * 9 + 512 * 10
    assert info["output_shape"] == (1, 10)
    # the count scales with the batch and does not depend on hybridization or initialisation
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 16, 16)))
    assert summary(net, (2, 3, 16, 16), print_table=False)["macs"] == 2 * info["macs"]


def test_summary_prints_a_table(capsys):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 1, in_channels=3), nn.Dense(2, in_units=4 * 5 * 5))
    summary(net, (1, 3, 5, 5))
    out = capsys.readouterr().out
    assert "Convolution" in out and "FullyConnected" in out and "parameters: 218" in out


def test_import_optional_names_the_extra(tmp_path, monkeypatch):
    from gluonfr._optional import MissingDependencyError, import_optional

    assert import_optional("json", "viz", "x") is __import__("json")
    with pytest.raises(MissingDependencyError, match=r"a feature needs gluonfr_nope_mod, an "
                       r"optional dependency: pip install 'gluonfr\[viz\]'"):
        import_optional("gluonfr_nope_mod.sub", "viz", "a feature")
    # an installed module that fails on a missing import of its own is not "missing"
    (tmp_path / "gluonfr_broken_mod.py").write_text("import gluonfr_other_nope\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as err:
        import_optional("gluonfr_broken_mod", "viz", "a feature")
    assert not isinstance(err.value, MissingDependencyError)


def test_features_without_their_extra_say_which_to_install(tmp_path, monkeypatch):
    from gluonfr._optional import MissingDependencyError
    from gluonfr.metrics import plot_roc
    from gluonfr.utils import export_onnx

    net = nn.HybridSequential()
    net.add(nn.Dense(2, in_units=3))
    net.initialize()
    monkeypatch.setitem(sys.modules, "onnx", None)  # what a missing package looks like
    with pytest.raises(MissingDependencyError, match=r"export_onnx needs onnx.*gluonfr\[onnx\]"):
        export_onnx(net, str(tmp_path / "x.onnx"), input_shape=(1, 3))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"plot_roc needs matplotlib.*gluonfr\[viz\]"):
        plot_roc({}, str(tmp_path / "roc.png"))
    assert os.listdir(tmp_path) == []
