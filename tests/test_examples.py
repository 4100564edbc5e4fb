"""Every example runs as a user would run it (a subprocess), on the real photos."""
import json
import os
import subprocess
import sys

import gluonfr
from gluonfr.data import FaceRecordDataset, load_bin
from gluonfr.data.align import norm_crop
from gluonfr.data.image import read_image
from gluonfr.data.synthetic import render_identity_image
from gluonfr.metrics import evaluate_targets
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


def test_train_on_your_images(tmp_path):
    # a folder of identity sub-folders, as a user has it: 10 procedural people x 4 photos
    faces = tmp_path / "faces"
    for k in range(10):
        (faces / f"person_{k}").mkdir(parents=True)
        for j in range(4):
            rgb = render_identity_image(5, k, j, size=112)
            cv2.imwrite(str(faces / f"person_{k}" / f"{j}.png"), rgb[:, :, ::-1])
    work = tmp_path / "work"
    out = _run("train_on_your_images.py", str(faces), str(work), "--held-out", "0.3",
               "--pairs", "20", "--iters", "3", "--batch-size", "8", "--input-size", "32",
               "--no-progress")
    with open(work / "results.json") as f:
        res = json.load(f)
    train_ids, held_ids = res["train_identities"], res["heldout_identities"]
    assert len(held_ids) == 3 and sorted(train_ids + held_ids) == sorted(os.listdir(faces))
    assert FaceRecordDataset(str(work / "data")).num_classes == 7

    # every held-out pair is made of held-out people's photos, as labelled
    images, issame = load_bin(str(work / "data" / "heldout.bin"))
    photos = {(k, j): cv2.imread(str(faces / k / f"{j}.png"))[:, :, ::-1]
              for k in os.listdir(faces) for j in range(4)}

    def who(img):
        return min(photos, key=lambda key: np.abs(photos[key].astype(int) - img).mean())[0]

    owners = [who(img.asnumpy().astype(int)) for img in images]
    assert set(owners) <= set(held_ids)
    assert [owners[2 * i] == owners[2 * i + 1] for i in range(20)] == list(issame)

    # the printed accuracy is the saved backbone's, evaluated independently of the script
    net = get_model("mobilefacenet", input_size=32)
    net.load_parameters(res["checkpoint"][:-len(".json")] + ".params")
    target = load_bin(str(work / "data" / "heldout.bin"), image_size=(32, 32))
    acc = evaluate_targets(net, {"t": target}, progress=False)["t"]["accuracy"]
    assert res["iterations"] == 3 and res["trained"]["accuracy"] == pytest.approx(acc)
    assert f"trained {acc:.4f}" in out
