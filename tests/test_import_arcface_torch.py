"""arcface_torch checkpoints -> gluonfr networks, checked against files torch itself wrote.

tests/fixtures/make_torch_fixtures.py (run once with torch) wrote an arcface_torch-layout
IResNet (iresnet50's depth, narrow widths) as ``torch.save(state_dict)``, as
``torch.onnx.export`` and its output on ``(x - 127.5) / 127.5``; the suite needs no torch.
"""
import io
import os
import pickle
import zipfile

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr.model_zoo import import_model
from gluonfr.model_zoo.importers import ImportFormatError, detect_format
from gluonfr.model_zoo.importers.arcface_torch import load_torch_state_dict
from gluonfr.model_zoo.importers.graph import GraphMismatch

import mxnet as mx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PT = os.path.join(FIXTURES, "arcface_torch_r50n.pt")
ONNX = os.path.join(FIXTURES, "arcface_torch_r50n.onnx")


@pytest.fixture(scope="module")
def reference():
    data = np.load(os.path.join(FIXTURES, "arcface_torch_r50n.npz"))
    return data["input"].astype(np.float32), data["output"]


def _rel(ours, ref):
    return np.abs(ours - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("path", [PT, ONNX])
def test_equals_torch_on_0_255_rgb(path, reference):
    x, torch_out = reference
    assert detect_format(path) == "arcface-torch"
    net = import_model(path)
    info = net.import_info
    assert info["name"] == "iresnet50" and "units" not in info["kwargs"]
    assert info["kwargs"]["channels"] == (4, 8, 8, 8) and net.embedding_size == 16
    assert info["kwargs"]["bn_eps"] == 1e-5
    assert info["kwargs"]["input_scale"] == pytest.approx(1 / 127.5, rel=1e-12)
    assert not info["input"]["normalisation_in_source_graph"]
    assert _rel(net(mx.nd.array(x)).asnumpy(), torch_out) < 1e-4


def test_onnx_runtime_agrees_with_the_imported_onnx(reference):
    x, _ = reference
    sess = ort.InferenceSession(ONNX, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {"data": (x - 127.5) / 127.5})[0]
    assert _rel(import_model(ONNX)(mx.nd.array(x)).asnumpy(), theirs) < 1e-4


def test_state_dict_read_without_torch():
    state = load_torch_state_dict(PT)
    assert state["conv1.weight"].shape == (4, 3, 3, 3)
    assert state["conv1.weight"].dtype == np.float32
    assert state["layer1.0.bn1.num_batches_tracked"].dtype == np.int64
    assert np.all(state["features.weight"] == 1)  # arcface_torch freezes it at 1
    assert len([k for k in state if k.endswith(".downsample.0.weight")]) == 4


def test_in_graph_normalisation_means_raw_pixels(tmp_path, reference):
    # an export that subtracts and scales inside the graph (as some released files do)
    x, _ = reference
    model = onnx.load(ONNX)
    graph = model.graph
    consts = [onnx.numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("mean", 127.5), ("scale", 1 / 128.0))]
    graph.initializer.extend(consts)
    first = [n for n in graph.node if "data" in n.input]
    for node in first:
        node.input[list(node.input).index("data")] = "scaled"
    graph.node.insert(0, onnx.helper.make_node("Sub", ["data", "mean"], ["centred"],
                                               name="Sub_in"))
    graph.node.insert(1, onnx.helper.make_node("Mul", ["centred", "scale"], ["scaled"],
                                               name="Mul_in"))
    path = str(tmp_path / "raw.onnx")
    onnx.save(model, path)
    theirs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"data": x})[0]
    net = import_model(path)
    assert net.import_info["input"]["normalisation_in_source_graph"]
    assert net.import_info["kwargs"]["input_scale"] == pytest.approx(1 / 128.0)
    assert _rel(net(mx.nd.array(x)).asnumpy(), theirs) < 1e-4


def test_onnx_that_does_not_fit_names_the_node(tmp_path):
    model = onnx.load(ONNX)
    node = [n for n in model.graph.node if n.name == "/layer2/layer2.1/prelu/PRelu"][0]
    node.op_type = "Elu"
    del node.input[1:]
    path = str(tmp_path / "elu.onnx")
    onnx.save(model, path)
    with pytest.raises(GraphMismatch, match=r"/layer2/layer2.1/prelu/PRelu' \(Elu\).*"
                                            r"scripts/eval.py --onnx"):
        import_model(path)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_with_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(payload, protocol=2))
        z.writestr("evil/version", "3\n")


def test_malicious_pt_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    path = str(tmp_path / "evil.pt")
    _zip_with_pickle(path, {"conv1.weight": payload})
    assert detect_format(path) == "arcface-torch"
    with pytest.raises(ImportFormatError, match=r"refusing to load global '(posix|os)\.system'"):
        import_model(path)
    assert not marker.exists()
    # the same through builtins.eval
    path2 = str(tmp_path / "evil2.pt")
    with zipfile.ZipFile(path2, "w") as z:
        z.writestr("evil2/data.pkl", b"cbuiltins\neval\n(Vopen('" + str(marker).encode()
                   + b"','w')\ntR.")
    with pytest.raises(ImportFormatError, match="refusing to load global 'builtins.eval'"):
        load_torch_state_dict(path2)
    assert not marker.exists()


def test_bad_pt_files(tmp_path):
    with zipfile.ZipFile(PT) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")][0]
        other = io.BytesIO()
        with zipfile.ZipFile(other, "w") as out:
            for n in names:
                if "/data/" not in n or n.endswith("/data/0"):
                    out.writestr(n, z.read(n))
    truncated = tmp_path / "missing.pt"
    truncated.write_bytes(other.getvalue())
    with pytest.raises(ImportFormatError, match="storage 1 missing"):
        import_model(str(truncated))
    not_zip = tmp_path / "legacy.pth"
    not_zip.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ImportFormatError, match="not a PyTorch zip checkpoint"):
        import_model(str(not_zip), fmt="arcface-torch")
    assert pkl.endswith("data.pkl")


def test_state_dict_of_another_architecture(tmp_path):
    # keys of arcface_torch's mbf (not an iresnet): the error names the missing tensor
    state = load_torch_state_dict(PT)
    renamed = {("conv_1.conv.weight" if k == "conv1.weight" else k): v for k, v in state.items()}
    from gluonfr.model_zoo.importers.arcface_torch import state_dict_graph
    with pytest.raises(ImportFormatError, match="no tensor 'conv1.weight'"):
        state_dict_graph(renamed, "mbf.pt")
