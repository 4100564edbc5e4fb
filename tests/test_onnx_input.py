"""Third-party ONNX models get the preprocessing they were trained with, and say which.

The arcface_torch export of tests/fixtures (written by torch) expects (x - 127.5) / 127.5
on RGB; gluonfr's own exports take raw pixels. Every path (gluonfr-eval --onnx,
FaceEmbedder(backend='onnx'), gluonfr-verify --onnx) must agree with the imported network.
"""
import json
import os
import shutil

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr import FaceEmbedder
from gluonfr.cli.eval import main as eval_main
from gluonfr.data import synthetic
from gluonfr.metrics import evaluate_targets, load_targets
from gluonfr.model_zoo import get_model, import_model
from gluonfr.model_zoo.cards import onnx_input_convention
from gluonfr.utils import export_onnx

import mxnet as mx
import numpy as np
import pytest

ONNX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                    "arcface_torch_r50n.onnx")
CROPS = np.random.RandomState(2).randint(0, 256, (3, 112, 112, 3)).astype(np.uint8)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_convention_from_graph_card_or_arguments(tmp_path):
    conv = onnx_input_convention(ONNX)
    assert (conv["mean"], conv["std"], conv["bgr"]) == (127.5, 127.5, False)
    assert "arcface_torch" in conv["reason"] and "assumed" in conv["reason"]
    own = export_onnx(get_model("mobilefacenet", blocks=(1, 1, 1, 1)),
                      str(tmp_path / "ours.onnx"))
    conv = onnx_input_convention(own)
    assert (conv["mean"], conv["std"]) == (0.0, 1.0) and "in-graph Sub/Mul" in conv["reason"]
    named = tmp_path / "buffalo_l" / "w600k_r50.onnx"
    named.parent.mkdir()
    shutil.copy(ONNX, named)
    conv = onnx_input_convention(str(named))
    assert (conv["mean"], conv["std"]) == (127.5, 127.5) and "w600k_r50" in conv["reason"]
    conv = onnx_input_convention(ONNX, mean=0.0, std=1.0, bgr=True)
    assert conv["reason"].startswith("input (x - 0) / 1 on BGR: given")


def test_embedder_onnx_equals_the_imported_network():
    net = import_model(ONNX)
    ref = net(mx.nd.array(CROPS.transpose(0, 3, 1, 2).astype(np.float32))).asnumpy()
    ref_flip = net(mx.nd.array(CROPS[:, :, ::-1].transpose(0, 3, 1, 2).astype(np.float32)))
    want = _unit(ref + ref_flip.asnumpy())
    emb = FaceEmbedder(backend="onnx", onnx_path=ONNX).embed_crops(CROPS)
    assert np.abs(emb - want).max() < 1e-4
    # the preprocessing matters: raw pixels into this model give other embeddings
    raw = FaceEmbedder(backend="onnx", onnx_path=ONNX, input_mean=0, input_std=1)
    assert np.abs(raw.embed_crops(CROPS) - want).max() > 1e-2
    bgr = FaceEmbedder(backend="onnx", onnx_path=ONNX, bgr=True)
    assert bgr.input_convention["bgr"]
    assert np.abs(bgr.embed_crops(CROPS[..., ::-1].copy()) - want).max() < 1e-4
    with pytest.raises(ValueError, match="onnx_path models only"):
        FaceEmbedder(model="mobilefacenet", input_mean=0.0)


def test_eval_onnx_prints_the_convention_and_matches(tmp_path, capsys):
    synthetic.make_dataset(str(tmp_path), num_identities=4, images_per_identity=2,
                           num_pairs=20, seed=5)
    out = tmp_path / "r.json"
    assert eval_main(["--onnx", ONNX, "--data-dir", str(tmp_path), "--targets", "synth_val",
                      "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "input (x - 127.5) / 127.5 on RGB" in printed
    got = json.load(open(out))["targets"]["synth_val"]
    targets, _ = load_targets(str(tmp_path), ["synth_val"])
    ref = evaluate_targets(import_model(ONNX), targets, progress=False)["synth_val"]
    assert got["flip"]["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-9)
    assert got["flip"]["threshold"] == pytest.approx(ref["threshold"], abs=1e-9)
    assert got["noflip"]["accuracy"] == pytest.approx(ref["noflip"]["accuracy"], abs=1e-9)
    with pytest.raises(SystemExit):
        eval_main(["--model", "mobilefacenet", "--bgr", "--data-dir", str(tmp_path)])
