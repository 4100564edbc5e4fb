"""Error galleries: the hardest false positives / negatives as grids and JSON (gluonfr-eval)."""
import json
import os

import gluonfr  # noqa: F401
from gluonfr.cli.eval import main as eval_main
from gluonfr.data import load_bin, pack_bin
from gluonfr.metrics import extract_embeddings
from gluonfr.metrics.gallery import error_gallery, hardest_errors
from gluonfr.metrics.protocol import pair_distances
from gluonfr.model_zoo import get_model

import cv2
import mxnet as mx
import numpy as np
import pytest


def test_hardest_errors_match_a_plain_loop():
    rng = np.random.default_rng(0)
    dist = np.round(rng.uniform(0, 4, 300), 2)  # rounded: ties happen
    same = rng.random(300) < 0.5
    thr = 1.7
    fp, fn = hardest_errors(dist, same, thr, num=20)
    loop_fp = sorted((d, i) for i, (d, s) in enumerate(zip(dist, same)) if not s and d < thr)
    loop_fn = sorted((-d, i) for i, (d, s) in enumerate(zip(dist, same)) if s and d >= thr)
    assert fp.tolist() == [i for _, i in loop_fp[:20]]
    assert fn.tolist() == [i for _, i in loop_fn[:20]]
    with pytest.raises(ValueError, match="must be"):
        hardest_errors(dist[:5], same, thr)


def test_gallery_grids_show_the_pairs_in_order(tmp_path):
    num = 10
    # image 2k is a flat grey of value 20*k: the grid's tiles can be traced to pair indices
    images = np.stack([np.full((112, 112, 3), 20 * (i // 2) + 5, np.uint8)
                       for i in range(2 * num)])
    same = np.array([True, False] * 5)
    dist = np.array([0.1, 0.2, 1.9, 0.9, 0.5, 1.1, 2.5, 0.3, 1.6, 1.4])
    g = error_gallery(images, same, dist, 1.0, str(tmp_path), "lfw", num=4, per_row=2)
    assert g["num_false_positives"] == 3 and g["num_false_negatives"] == 3
    assert g["false_positives"] == [[1, 0.2], [7, 0.3], [3, 0.9]]
    assert [k for k, _ in g["false_negatives"]] == [6, 2, 8]
    saved = json.loads((tmp_path / "lfw_errors.json").read_text())
    assert saved["false_negatives"] == g["false_negatives"] and saved["threshold"] == 1.0
    sheet = cv2.imread(str(tmp_path / "lfw_false_negatives.jpg"))
    tile_h = (sheet.shape[0] - 2) // 2 - 2  # 3 pairs, 2 per row: 2 rows
    tile_w = (sheet.shape[1] - 2) // 2 - 2
    for slot, pair in enumerate([6, 2, 8]):
        r, c = divmod(slot, 2)
        y, x = 2 + r * (tile_h + 2), 2 + c * (tile_w + 2)
        face = sheet[y + 20:y + 90, x + 6 + 20:x + 6 + 90]  # after the 6-pixel truth bar
        assert abs(face.mean() - (20 * pair + 5)) < 3, (slot, pair)
    assert (tmp_path / "lfw_false_positives.jpg").exists()
    g = error_gallery(images, same, dist, 0.0, str(tmp_path / "none"), "lfw")
    assert g["num_false_positives"] == 0 and g["num_false_negatives"] == 5
    assert not (tmp_path / "none" / "lfw_false_positives.jpg").exists()  # nothing to show
    assert g["files"] == [str(tmp_path / "none" / n) for n in ("lfw_false_negatives.jpg",
                                                               "lfw_errors.json")]


def test_eval_cli_gallery_uses_the_evaluated_distances(tmp_path, capsys):
    rng = np.random.default_rng(1)
    pairs = []
    for i in range(20):
        a = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
        b = a if i % 2 == 0 else rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
        pairs.append((a, np.clip(b + rng.normal(0, 60, b.shape), 0, 255).astype(np.uint8),
                      i % 2 == 0))
    pack_bin(pairs, str(tmp_path / "lfw.bin"))
    mx.random.seed(0)
    net = get_model("mobilefacenet")
    net.save_parameters(str(tmp_path / "mfn.params"))
    out = tmp_path / "gallery"
    assert eval_main(["--model", "mobilefacenet", "--params", str(tmp_path / "mfn.params"),
                      "--data-dir", str(tmp_path), "--targets", "lfw", "--nfolds", "2",
                      "--json", str(tmp_path / "r.json"), "--gallery", str(out),
                      "--quiet"]) == 0
    assert "false positives" in capsys.readouterr().out
    summary = json.loads((out / "lfw_errors.json").read_text())
    result = json.loads((tmp_path / "r.json").read_text())["targets"]["lfw"]["flip"]
    assert summary["threshold"] == pytest.approx(result["threshold"])
    # independent path: the embeddings of the .bin, flip-summed, their pair distances
    images, issame = load_bin(str(tmp_path / "lfw.bin"))
    emb = extract_embeddings(net, images, flip=True)
    dist = pair_distances(emb)
    thr = summary["threshold"]
    assert summary["num_false_positives"] == int((~issame & (dist < thr)).sum())
    assert summary["num_false_negatives"] == int((issame & (dist >= thr)).sum())
    for k, d in summary["false_positives"] + summary["false_negatives"]:
        assert d == pytest.approx(float(dist[k]), abs=1e-4)
    shown = summary["num_false_positives"] > 0
    assert os.path.exists(out / "lfw_false_positives.jpg") == shown
