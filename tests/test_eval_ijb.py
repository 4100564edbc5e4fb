"""The IJB run end to end on a generated layout: alignment + embedding vs a direct computation,
the cache (a real kill of a subprocess, then resume: identical results), the ONNX and symbol
paths, gluonfr-eval-ijb's outputs and re-scoring from saved scores."""
import json
import os
import signal
import subprocess
import sys
import time

from gluonfr.cli import eval_ijb
from gluonfr.data.align import norm_crop
from gluonfr.data.ijb import load_ijb, make_synthetic_ijb
from gluonfr.metrics.ijb import template_features, verification_11
from gluonfr.metrics.ijb_eval import embed_ijb, evaluate_ijb, ijb_forward, load_scores

import cv2
import mxnet as mx
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("ijb")
    make_synthetic_ijb(str(root), "IJBC", num_subjects=4, templates_per_subject=2,
                       medias_per_template=2, images_per_media=1, distractors=1, seed=2)
    return str(root)


def tiny_net():
    """A small deterministic embedding network (fast enough to embed crops in tests)."""
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Conv2D(8, 5, strides=4, activation="relu"),
            mx.gluon.nn.Conv2D(16, 3, strides=2, activation="relu"), mx.gluon.nn.Flatten(),
            mx.gluon.nn.Dense(32))
    net.initialize(mx.init.Xavier(rnd_type="gaussian", magnitude=2))
    rng = np.random.default_rng(0)
    net(mx.nd.zeros((1, 3, 112, 112)))
    for p in net.collect_params().values():  # fixed weights, whatever mxnet's seed
        p.set_data(mx.nd.array(rng.standard_normal(p.shape) * 0.02))
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    net = tiny_net()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 112, 112)))
    net.export(str(folder / "tiny"))
    return net, str(folder / "tiny-symbol.json"), str(folder / "tiny-0000.params")


def test_embeddings_are_the_networks_on_aligned_crops(layout, exported, tmp_path):
    net, _, _ = exported
    meta = load_ijb(layout, "IJBC")
    emb, emb_flip = embed_ijb(meta, ijb_forward(net=net, batch_size=5), str(tmp_path / "c"),
                              "tiny", chunk_size=4, progress=False)
    for i in (0, 7, len(meta) - 1):
        crop = norm_crop(cv2.imread(meta.image_path(i)), meta.landmarks[i])[:, :, ::-1]
        x = mx.nd.array(crop.transpose(2, 0, 1)[None].astype(np.float32))
        np.testing.assert_allclose(emb[i], net(x).asnumpy()[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(emb_flip[i], net(x[:, :, :, ::-1]).asnumpy()[0],
                                   rtol=1e-4, atol=1e-5)
    # a second call reads the cache (no network at all) and gives the same arrays
    def no_network(crops):
        raise AssertionError("the cache should have been used")

    again = embed_ijb(meta, no_network, str(tmp_path / "c"), "tiny", progress=False)
    np.testing.assert_array_equal(again[0], emb)
    # another model's cache is refused, by name
    with pytest.raises(ValueError, match="made for model 'tiny', not 'other'"):
        embed_ijb(meta, no_network, str(tmp_path / "c"), "other", progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad/index.json: not a gluonfr IJB embedding cache"):
        embed_ijb(meta, no_network, str(tmp_path / "bad"), "tiny", progress=False)
    # evaluate_ijb is template_features + verification_11 of the mode's image features
    res = evaluate_ijb(meta, emb, emb_flip, ["flip=sum,norm=off,faceness=on"])
    ids, feats = template_features((emb + emb_flip) * meta.faceness[:, None], meta.templates,
                                   meta.medias)
    ref = verification_11(ids, feats, meta.t1, meta.t2, meta.labels)
    got = res["flip=sum,norm=off,faceness=on"]
    np.testing.assert_allclose(got["verification"]["scores"], ref["scores"], rtol=1e-5)
    assert set(got["identification"]["galleries"]) == {"G1", "G2"}


def test_onnx_file_gives_the_networks_embeddings(layout, exported, tmp_path):
    from gluonfr.utils import export_onnx

    net, _, _ = exported
    path = export_onnx(net, str(tmp_path / "tiny.onnx"))
    meta = load_ijb(layout, "IJBC", pairs=False)
    a = embed_ijb(meta, ijb_forward(net=net), str(tmp_path / "a"), "mx", progress=False)
    b = embed_ijb(meta, ijb_forward(onnx_path=path), str(tmp_path / "b"), "onnx",
                  progress=False)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-3, atol=1e-4)


def test_cli_symbol_json_scores_plot_and_rescoring(layout, exported, tmp_path, capsys):
    _, symbol, params = exported
    out = tmp_path / "r.json"
    status = eval_ijb.main(["--ijb-root", layout, "--target", "IJBC", "--symbol", symbol,
                            "--params", params, "--modes", "default", "flip=concat,norm=on",
                            "--cache-dir", str(tmp_path / "cache"), "--chunk-size", "5",
                            "--json", str(out), "--plot", str(tmp_path / "roc.png"), "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "IJBC 1:1 TAR (%), nearest rule" in printed and "strict rule" in printed
    assert "flip=concat,norm=on,faceness=on" in printed and "TPIR@FPIR=0.01" in printed
    data = json.loads(out.read_text())
    assert data["modes_run"] == ["flip=sum,norm=off,faceness=on",
                                 "flip=concat,norm=on,faceness=on"]
    default = data["modes"]["flip=sum,norm=off,faceness=on"]
    assert default["mode"] == {"flip": "sum", "norm": False, "faceness": True}
    assert set(default["verification"]["tar_at_far"]) == {"1e-06", "1e-05", "0.0001", "0.001",
                                                          "0.01", "0.1"}
    assert os.path.getsize(tmp_path / "roc.png") > 1000
    scores, labels = load_scores(str(tmp_path / "r.scores.npz"))
    assert list(scores) == data["modes_run"] and len(labels) == default["verification"][
        "num_pairs"]
    # other FARs from the saved scores: no images, no network
    status = eval_ijb.main(["--from-scores", str(tmp_path / "r.scores.npz"), "--fars",
                            "0.1,0.5", "--json", str(tmp_path / "again.json")])
    assert status == 0
    again = json.loads((tmp_path / "again.json").read_text())["modes"]
    assert again["flip=sum,norm=off,faceness=on"]["verification"]["tar_at_far"]["0.1"] == \
        default["verification"]["tar_at_far"]["0.1"]
    assert "0.5" in again["flip=sum,norm=off,faceness=on"]["verification"]["tar_at_far"]


def test_cli_refuses_bad_input(layout, tmp_path, capsys):
    with pytest.raises(SystemExit):
        eval_ijb.main(["--ijb-root", layout])  # no model
    with pytest.raises(SystemExit):
        eval_ijb.main(["--ijb-root", layout, "--model", "mobilefacenet", "--modes", "flip=x"])
    assert "flip must be one of" in capsys.readouterr().err
    status = eval_ijb.main(["--ijb-root", str(tmp_path), "--model", "mobilefacenet",
                            "--params", __file__, "--quiet"])
    assert status == 2 and "IJB_release layout" in capsys.readouterr().err


CHILD = """
import sys, time
import gluonfr
import mxnet as mx
import numpy as np
from gluonfr.data.ijb import load_ijb
from gluonfr.metrics.ijb_eval import embed_ijb, ijb_forward
{tiny_net}
forward = ijb_forward(net=tiny_net(), batch_size=2)

def slow(crops):  # a network slow enough for the kill to land mid-run
    time.sleep(0.2)
    return forward(crops)

embed_ijb(load_ijb(sys.argv[1], "IJBC", pairs=False), slow, sys.argv[2], "tiny",
          chunk_size=2, progress=False)
print("finished")
"""


def _chunks(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.startswith("chunk-") and f.endswith(".npz")) if os.path.isdir(
        folder) else []


def test_kill_and_resume_give_identical_results(layout, tmp_path):
    import inspect

    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tiny_net=inspect.getsource(tiny_net)))
    cache = str(tmp_path / "resumed")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(script), layout, cache], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None and len(_chunks(cache)) < 2:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # a real kill: no cleanup, no atexit
    finally:
        out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way: {err[-2000:]}"
    meta = load_ijb(layout, "IJBC", pairs=False)
    chunks = _chunks(cache)
    assert 2 <= len(chunks) < (len(meta) + 1) // 2 and b"finished" not in out
    before = {c: os.stat(c).st_mtime_ns for c in chunks}
    calls = []
    forward = ijb_forward(net=tiny_net(), batch_size=2)

    def counting(crops):
        calls.append(len(crops))
        return forward(crops)

    resumed = embed_ijb(meta, counting, cache, "tiny", progress=False)
    # the chunks written before the kill are reused: only the others are embedded
    assert all(os.stat(c).st_mtime_ns == t for c, t in before.items())
    assert sum(calls) == len(meta) - 2 * len(chunks)
    fresh = embed_ijb(meta, forward, str(tmp_path / "fresh"), "tiny", chunk_size=2,
                      progress=False)
    np.testing.assert_array_equal(resumed[0], fresh[0])
    np.testing.assert_array_equal(resumed[1], fresh[1])
    full = load_ijb(layout, "IJBC")
    a = evaluate_ijb(full, *resumed, ["default"])["flip=sum,norm=off,faceness=on"]
    b = evaluate_ijb(full, *fresh, ["default"])["flip=sum,norm=off,faceness=on"]
    np.testing.assert_array_equal(a["verification"]["scores"], b["verification"]["scores"])
    assert a["verification"]["tar_at_far"] == b["verification"]["tar_at_far"]


def test_missing_or_broken_image_is_named(layout, tmp_path):
    meta = load_ijb(layout, "IJBC", pairs=False)
    meta.image_dir = str(tmp_path)  # no images there
    forward = ijb_forward(net=tiny_net())
    with pytest.raises(FileNotFoundError, match=r"1\.jpg \(image 1 of the IJBC meta files\)"):
        embed_ijb(meta, forward, str(tmp_path / "c1"), "tiny", progress=False)
    for i in range(len(meta)):
        (tmp_path / meta.names[i]).write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"1\.jpg \(image 1 of the IJBC meta files\)"):
        embed_ijb(meta, forward, str(tmp_path / "c2"), "tiny", progress=False)
