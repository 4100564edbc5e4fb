"""The model store, through a local store made from freshly initialised parameters.

Nothing leaves the machine: the store is a folder served as ``file://``, as a plain path,
or by an HTTP server on 127.0.0.1.
"""
import functools
import hashlib
import http.server
import os
import runpy
import shutil
import sys
import threading

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr.model_zoo import get_model, get_model_file, model_store, publish_model, purge

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLISH_SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "publish_model.py")


def _sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def _trained(seed=0, **kwargs):
    """A stand-in for a trained backbone: initialised, with non-default statistics."""
    mx.random.seed(seed)
    net = get_model("mobilefacenet", **kwargs)
    rng = np.random.RandomState(seed)
    for name, p in net.collect_params().items():
        if name.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.uniform(-0.3, 0.3, p.shape)))
        elif name.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
    return net


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A 'mobilefacenet' published once for the module: the net, its file and the entry."""
    folder = tmp_path_factory.mktemp("published")
    net = _trained()
    trained = folder / "mobilefacenet-0100.params"
    net.save_parameters(str(trained))
    info = publish_model(str(trained), "mobilefacenet", out_dir=str(folder / "repo"))
    x = mx.nd.array(np.random.RandomState(5).uniform(0, 255, (2, 3, 112, 112)))
    return {"info": info, "x": x, "expected": net(x).asnumpy()}


@pytest.fixture
def store(published, tmp_path, monkeypatch):
    """A private copy of the store folder; the table patched to know its file."""
    info = published["info"]
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(info["path"], repo / info["file_name"])
    monkeypatch.setattr(model_store, "_model_sha1", {"mobilefacenet": info["sha1"]})
    monkeypatch.setenv("GLUONFR_REPO_URL", repo.as_uri())
    monkeypatch.delenv("GLUONFR_HOME", raising=False)
    return dict(published, repo=repo, cache=tmp_path / "cache")


def test_publish_names_the_file_by_its_sha1(published):
    info = published["info"]
    # no temporary; the local index beside the file (publish_model's entry)
    assert sorted(os.listdir(os.path.dirname(info["path"]))) == sorted([info["file_name"],
                                                                        "index.json"])
    assert info["sha1"] == _sha1(info["path"])
    assert info["file_name"] == f"mobilefacenet-{info['sha1'][:8]}.params"
    assert info["entry"] == f'"mobilefacenet": "{info["sha1"]}",'
    assert info["dropped"] == []


def test_miss_fetches_from_file_url_then_loads(store):
    cache = store["cache"]
    net = get_model("mobilefacenet", pretrained=True, root=str(cache))
    assert os.listdir(cache) == [store["info"]["file_name"]]
    assert _sha1(cache / store["info"]["file_name"]) == store["info"]["sha1"]
    np.testing.assert_array_equal(net(store["x"]).asnumpy(), store["expected"])


def test_hit_uses_the_cache_without_the_store(store, monkeypatch):
    cache = str(store["cache"])
    first = get_model_file("mobilefacenet", root=cache)
    monkeypatch.setenv("GLUONFR_REPO_URL", str(store["repo"] / "does-not-exist"))
    assert get_model_file("MobileFaceNet", root=cache) == first


def test_plain_folder_store_and_gluonfr_home(store, monkeypatch, tmp_path):
    monkeypatch.setenv("GLUONFR_REPO_URL", str(store["repo"]))
    monkeypatch.setenv("GLUONFR_HOME", str(tmp_path / "home"))
    path = get_model_file("mobilefacenet")
    assert path == str(tmp_path / "home" / "models" / store["info"]["file_name"])
    purge()
    assert os.listdir(tmp_path / "home" / "models") == []


def test_http_store_on_localhost(store, monkeypatch):
    handler = functools.partial(_QuietHandler, directory=str(store["repo"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setenv("GLUONFR_REPO_URL", base)
        path = get_model_file("mobilefacenet", root=str(store["cache"]))
        assert _sha1(path) == store["info"]["sha1"]
        monkeypatch.setattr(model_store, "_model_sha1", {"mobilefacenet": "0" * 40})
        with pytest.raises(OSError, match="404"):  # not in the store: the URL is named
            get_model_file("mobilefacenet", root=str(store["cache"] / "other"))
        assert os.listdir(store["cache"] / "other") == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_corrupted_cache_is_fetched_again(store):
    cache = store["cache"]
    path = get_model_file("mobilefacenet", root=str(cache))
    with open(path, "r+b") as f:  # flip bytes in the middle of a weight
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00\x01\x02\x03")
    assert _sha1(path) != store["info"]["sha1"]
    assert get_model_file("mobilefacenet", root=str(cache)) == path
    assert _sha1(path) == store["info"]["sha1"]


def test_corrupted_store_file_raises_and_leaves_nothing(store):
    repo_file = store["repo"] / store["info"]["file_name"]
    data = repo_file.read_bytes()
    repo_file.write_bytes(data[:-100])  # truncated upload
    cache = store["cache"]
    with pytest.raises(model_store.ChecksumError) as err:
        get_model_file("mobilefacenet", root=str(cache))
    message = str(err.value)
    assert store["info"]["sha1"] in message and repo_file.as_uri() in message
    assert os.listdir(cache) == []  # neither the bad file nor a temporary stays


def test_unknown_or_unpublished_names(store):
    with pytest.raises(ValueError, match="no pretrained weights .* 'iresnet18'"):
        get_model("iresnet18", pretrained=True, root=str(store["cache"]))
    with pytest.raises(ValueError, match="mobilefacenet"):
        get_model("mobilefacenets", pretrained=True)
    assert not store["cache"].exists()


def test_publish_strips_the_classifier_of_a_training_network(tmp_path):
    class TrainNet(nn.HybridBlock):
        def __init__(self, backbone, classes):
            super().__init__()
            with self.name_scope():
                self.backbone = backbone
                self.classifier = nn.Dense(classes, in_units=backbone.embedding_size,
                                           use_bias=False)

        def hybrid_forward(self, F, x):
            return self.classifier(self.backbone(x))

    backbone = _trained(seed=3, embedding_size=64)
    train_net = TrainNet(backbone, 10)
    train_net.classifier.initialize()
    train_net.cast("float16")  # trained in float16: the store keeps float32
    full = tmp_path / "full.params"
    train_net.save_parameters(str(full))

    info = publish_model(str(full), "mobilefacenet", out_dir=str(tmp_path / "out"),
                         embedding_size=64)
    assert info["dropped"] == ["classifier.weight"]
    stored = mx.nd.load(info["path"])
    assert {v.dtype for v in stored.values()} == {np.float32}
    fresh = get_model("mobilefacenet", embedding_size=64)
    fresh.load_parameters(info["path"])
    for key, value in backbone._collect_params_with_prefix().items():
        np.testing.assert_array_equal(fresh._collect_params_with_prefix()[key].data().asnumpy(),
                                      value.data().astype("float32").asnumpy())

    with pytest.raises(ValueError, match="expects"):  # trained with another embedding size
        publish_model(str(full), "mobilefacenet", out_dir=str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="iresnet18"):  # another architecture
        publish_model(str(full), "iresnet18", out_dir=str(tmp_path / "bad"))
    bogus = tmp_path / "bogus.params"
    bogus.write_bytes(b"not a parameter file")
    with pytest.raises(ValueError, match="bogus.params"):
        publish_model(str(bogus), "mobilefacenet", out_dir=str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists() or os.listdir(tmp_path / "bad") == []


def test_publish_script_prints_the_entry(tmp_path, monkeypatch, capsys):
    net = _trained(seed=4, embedding_size=32, width_mult=0.5)
    params = tmp_path / "trained.params"
    net.save_parameters(str(params))
    entry = tmp_path / "entry.json"
    monkeypatch.setattr(sys, "argv", [PUBLISH_SCRIPT, str(params), "--model", "mobilefacenet",
                                      "--out-dir", str(tmp_path / "out"),
                                      "--embedding-size", "32", "--width-mult", "0.5",
                                      "--json", str(entry)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(PUBLISH_SCRIPT, run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    (name,) = [n for n in os.listdir(tmp_path / "out") if n != "index.json"]
    sha1 = _sha1(tmp_path / "out" / name)
    assert name == f"mobilefacenet-{sha1[:8]}.params"
    assert f'"mobilefacenet": "{sha1}",' in out
    assert f'"sha1": "{sha1}"' in entry.read_text()
