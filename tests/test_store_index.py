"""The local model store: gluonfr-import -> get_model(..., pretrained=True) in a fresh process,
sha1 refusal of a tampered file, tags, aliases, model cards, publish_model's entries."""
import json
import os
import subprocess
import sys

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr.cli.import_ import main as import_main
from gluonfr.model_zoo import get_model, get_model_card, import_model, model_store, publish_model
from gluonfr.model_zoo.store_index import index_path, list_entries

import mxnet as mx
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ONNX = os.path.join(HERE, "fixtures", "arcface_torch_r50n.onnx")
sys.path.insert(0, os.path.join(HERE, "fixtures"))
import insightface_symbols as fx  # noqa: E402

BATCH = np.random.RandomState(3).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)


@pytest.fixture(scope="module")
def y1(tmp_path_factory):
    """A y1 checkpoint in a folder named like insightface's release."""
    folder = tmp_path_factory.mktemp("zoo") / "model-y1-test2"
    folder.mkdir()
    prefix = str(folder / "model")
    fx.write_checkpoint(fx.fmobilefacenet(blocks=(1, 1, 1, 1)), prefix, seed=4)
    return prefix + ",0", fx.run_symbol(prefix, 0, BATCH)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUONFR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GLUONFR_REPO_URL", raising=False)
    return tmp_path / "home" / "models"


def test_import_then_pretrained_in_a_fresh_process(y1, cache, tmp_path, capsys):
    source, ref = y1
    assert import_main([source, "--json", str(tmp_path / "entry.json")]) == 0
    out = capsys.readouterr().out
    assert "get_model('mobilefacenet', pretrained=True)" in out
    assert "model-y1-test2" in out  # recognised release, printed with its licence
    entry = json.load(open(tmp_path / "entry.json"))
    assert entry["tag"] == "model-y1-test2" and entry["arch"] == "mobilefacenet"
    assert os.path.exists(cache / entry["file_name"])
    assert entry["file_name"] == f"mobilefacenet-{entry['sha1'][:8]}.params"
    assert [e["tag"] for e in list_entries()] == ["model-y1-test2"]
    np.save(tmp_path / "x.npy", BATCH)
    code = ("import gluonfr, numpy as np, mxnet as mx, sys\n"
            "from gluonfr.model_zoo import get_model\n"
            "net = get_model('mobilefacenet', pretrained=True)\n"
            "x = np.load(sys.argv[1])\n"
            "np.save(sys.argv[2], net(mx.nd.array(x)).asnumpy())\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, env=env, cwd=str(tmp_path))
    fresh = np.load(tmp_path / "y.npy")
    assert np.abs(fresh - ref).max() / np.abs(ref).max() < 1e-4
    assert np.array_equal(fresh, import_model(source)(mx.nd.array(BATCH)).asnumpy())


def test_tampered_file_is_refused(y1, cache):
    assert import_main([y1[0]]) == 0
    entry = list_entries()[0]
    path = cache / entry["file_name"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(model_store.ChecksumError, match="refusing to load it"):
        get_model("mobilefacenet", pretrained=True)
    assert path.exists()  # the user's only converted copy is not deleted


def test_card_of_a_known_release(y1, cache):
    assert import_main([y1[0]]) == 0
    card = get_model_card("mobilefacenet")
    assert card["release"] == "model-y1-test2"
    assert card["training_set"] == "MS1M-refine-v1 (MS1MV1)"
    assert card["published_accuracy"]["LFW"] == 99.50
    assert "not measured by gluonfr" in card["published_accuracy"]["reported_by"]
    assert card["input"]["color"] == "RGB"
    assert card["input"]["normalisation"].startswith("(x - 127.5) * 0.0078125")
    assert card["embedding_size"] == 128 and card["format"] == "insightface-mxnet"
    assert "non-commercial" in card["licence"]
    assert card["source"] == "model-y1-test2/model,0"  # no private folders


def test_alias_tags_and_card_overrides(y1, cache, tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"training_set": "my own"}))
    assert import_main([ONNX, "--name", "w600k_test", "--card", str(card)]) == 0
    net = get_model("w600k_test", pretrained=True)  # an alias of iresnet50 + kwargs
    assert net.embedding_size == 16 and type(net).__name__ == "IResNet"
    ref = import_model(ONNX)(mx.nd.array(BATCH)).asnumpy()
    assert np.array_equal(net(mx.nd.array(BATCH)).asnumpy(), ref)
    assert get_model_card("w600k_test")["training_set"] == "my own"
    # a second weight for the same name: True is ambiguous, the tag picks
    assert import_main([ONNX, "--name", "w600k_test", "--tag", "second"]) == 0
    with pytest.raises(ValueError, match="2 stored weights.*arcface_torch_r50n, second"):
        get_model("w600k_test", pretrained=True)
    assert get_model("w600k_test", pretrained="second").embedding_size == 16
    with pytest.raises(ValueError, match="no weights tagged 'third'"):
        get_model("w600k_test", pretrained="third")
    assert import_main([ONNX, "--name", "iresnet100"]) == 2  # another architecture


def test_nothing_stored_says_how_to_get_weights(cache):
    with pytest.raises(ValueError) as err:
        get_model("iresnet50", pretrained=True)
    text = str(err.value)
    assert "gluonfr-import" in text and "GLUONFR_REPO_URL" in text
    assert index_path() in text
    assert model_store.DEFAULT_REPO_URL is None and model_store._model_sha1 == {}
    with pytest.raises(ValueError, match="gluonfr-import"):
        get_model_card("iresnet50")


def test_bad_source_exits_2(cache, tmp_path, capsys):
    assert import_main([str(tmp_path / "missing.onnx")]) == 2
    assert "gluonfr-import:" in capsys.readouterr().err
    assert not os.path.exists(index_path())


def test_publish_model_writes_the_same_entry(cache, tmp_path):
    mx.random.seed(1)
    net = get_model("mobilefacenet", blocks=(1, 1, 1, 1))
    trained = tmp_path / "mfn-0100.params"
    net.save_parameters(str(trained))
    info = publish_model(str(trained), "mobilefacenet", out_dir=str(cache),
                         card={"training_set": "synthetic"}, blocks=(1, 1, 1, 1))
    assert info["index"]["tag"] == "mfn-0100" and info["index"]["kwargs"]["blocks"] == [1] * 4
    again = get_model("mobilefacenet", pretrained="mfn-0100")
    assert np.array_equal(again(mx.nd.array(BATCH)).asnumpy(), net(mx.nd.array(BATCH)).asnumpy())
    assert get_model_card("mobilefacenet")["training_set"] == "synthetic"
    assert sorted(os.listdir(cache)) == sorted([info["file_name"], "index.json"])


def test_fine_tune_from_imported_weights(cache, tmp_path):
    from gluonfr.data import synthetic
    from gluonfr.engine import Callback, TrainConfig, train

    assert import_main([ONNX, "--name", "w600k_test"]) == 0
    data = tmp_path / "faces"
    synthetic.make_dataset(str(data), num_identities=8, images_per_identity=4, num_pairs=10,
                           seed=1)

    class Start(Callback):
        def on_train_begin(self, loop):
            self.params = {k: p.data().asnumpy().copy()
                           for k, p in loop.backbone._collect_params_with_prefix().items()}
            self.eps = loop.backbone.stem.bn._kwargs["eps"]
            self.scale = loop.backbone.normalize._scale

    start = Start()
    cfg = dict(model="iresnet50", data_dir=str(data), batch_size=8, max_iters=1, lr=0.01,
               warmup_iters=0, loss="arcface", margin_s=16.0, val_interval=0,
               save_dir=str(tmp_path / "run"), num_workers=0, progress=False,
               tensorboard="none", pretrained_backbone="w600k_test:arcface_torch_r50n")
    train(TrainConfig(**cfg), callbacks=[start])
    stored = mx.nd.load(str(cache / list_entries()[0]["file_name"]))
    assert sorted(stored) == sorted(start.params)
    for key, value in stored.items():
        np.testing.assert_array_equal(value.asnumpy(), start.params[key], err_msg=key)
    assert start.eps == 1e-5 and start.scale == pytest.approx(1 / 127.5)
    with pytest.raises(ValueError, match="holds iresnet50 weights, but --model is "
                                         "mobilefacenet"):
        train(TrainConfig(**dict(cfg, model="mobilefacenet", save_dir=str(tmp_path / "b"))))


def test_gluonface_file_imports_into_the_store(cache, tmp_path):
    # the gluon-face format (#21) goes through the same store and card
    import lzma
    import shutil

    src = os.path.join(HERE, "fixtures", "gluonface", "mobilefacenet.params.xz")
    path = tmp_path / "mobilefacenet.params"
    with lzma.open(src) as f, open(path, "wb") as out:
        shutil.copyfileobj(f, out)
    assert import_main([str(path), "--fmt", "gluon-face", "--tag", "gf"]) == 0
    card = get_model_card("gluonface_mobilefacenet")
    assert card["format"] == "gluon-face" and card["embedding_size"] == 128
    net = get_model("gluonface_mobilefacenet", pretrained="gf")
    ref = import_model(str(path), fmt="gluon-face")(mx.nd.array(BATCH)).asnumpy()
    assert np.array_equal(net(mx.nd.array(BATCH)).asnumpy(), ref)
