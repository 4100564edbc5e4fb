"""Every example runs as a user would run it (a subprocess), on the real photos."""
import json
import os
import subprocess
import sys

import gluonfr
from gluonfr.data.align import norm_crop
from gluonfr.embedder import read_image
from gluonfr.model_zoo import get_model

import cv2
import mxnet as mx
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "examples", script), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def setup(shared_dir, tmp_path_factory):
    folder = os.path.join(shared_dir, "data", "real-faces")
    tmp = tmp_path_factory.mktemp("examples")
    mx.random.seed(11)
    params = str(tmp / "mobilefacenet.params")
    get_model("mobilefacenet").save_parameters(params)
    embedder = gluonfr.FaceEmbedder("mobilefacenet", params=params)
    with open(os.path.join(folder, "landmarks.json")) as f:
        table = json.load(f)
    return folder, tmp, params, embedder, table


def test_verify_two_faces(setup):
    folder, _, params, embedder, table = setup
    a, b = "obama_1.jpg", "biden_1.jpg"
    out = _run("verify_two_faces.py", os.path.join(folder, a), os.path.join(folder, b),
               "--landmarks", os.path.join(folder, "landmarks.json"), "--params", params)
    expected, _ = embedder.compare(os.path.join(folder, a), os.path.join(folder, b),
                                   landmarks_a=table[a]["landmarks5"],
                                   landmarks_b=table[b]["landmarks5"])
    assert f"cosine similarity {expected:.4f}" in out


def test_extract_embeddings(setup):
    folder, tmp, params, embedder, table = setup
    out_dir = tmp / "emb"
    _run("extract_embeddings.py", folder, str(out_dir), "--landmarks",
         os.path.join(folder, "landmarks.json"), "--params", params)
    names = (out_dir / "names.txt").read_text().split()
    emb = np.load(out_dir / "embeddings.npy")
    assert names == sorted(table) and emb.shape == (6, 128)
    ref = embedder.embed([os.path.join(folder, n) for n in names],
                         landmarks=[table[n]["landmarks5"] for n in names])
    np.testing.assert_allclose(emb, ref, atol=1e-5)


def test_onnx_inference(setup):
    folder, tmp, params, embedder, table = setup
    crops = []
    for name in ("obama_2.jpg", "obama_3.jpg"):
        crop = norm_crop(read_image(os.path.join(folder, name)), table[name]["landmarks5"])
        path = str(tmp / (name + ".png"))  # lossless, so both sides see the same pixels
        cv2.imwrite(path, cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        crops.append(path)
    out = _run("onnx_inference.py", *crops, "--out", str(tmp / "m.onnx"), "--params", params)
    similarity = float(out.rsplit(" ", 1)[1])
    expected, _ = embedder.compare(crops[0], crops[1])
    assert similarity == pytest.approx(expected, abs=1e-4)
