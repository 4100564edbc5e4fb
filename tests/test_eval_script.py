"""scripts/eval.py end to end (a tiny .bin, a model, the script in a subprocess) and parse_ctx."""
import importlib.util
import json
import os
import re
import subprocess
import sys

from gluonfr.data import load_bin, pack_bin
from gluonfr.metrics import evaluate_targets, verification
from gluonfr.utils.context import as_context_list, parse_ctx

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "eval.py")
ACC = r"(\d\.\d{6})\+-(\d\.\d{6})"
ROW = re.compile(rf"^\| (\w+): +\| {ACC} +\|(?: {ACC} +\|)?$")


def write_bin(path, num_pairs, seed, size=112):
    """Pairs of random images; a same pair is one image and a noisy copy."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(num_pairs):
        a = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        same = i % 2 == 0
        b = a if same else rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        b = np.clip(b + rng.normal(0, 20, size=b.shape), 0, 255).astype(np.uint8)
        pairs.append((a, b, same))
    pack_bin(pairs, str(path))


def table_rows(text):
    return {m.group(1): m.groups()[1:] for m in map(ROW.match, text.splitlines()) if m}


def load_script():
    spec = importlib.util.spec_from_file_location("gluonfr_eval_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bins")
    write_bin(folder / "lfw.bin", 6, seed=0)
    write_bin(folder / "cfp_fp.bin", 6, seed=1)
    return folder


def tiny_net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 5, strides=8, in_channels=3), nn.GlobalAvgPool2D(), nn.Flatten(),
            nn.Dense(8, in_units=4))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.zeros((1, 3, 112, 112)))
    return net


def test_eval_script_subprocess(data_dir, tmp_path):
    net = tiny_net()
    prefix = str(tmp_path / "tiny")
    net.export(prefix)
    out_json, out_png = tmp_path / "res.json", tmp_path / "roc.png"
    cmd = [sys.executable, SCRIPT, "--symbol", prefix + "-symbol.json",
           "--params", prefix + "-0000.params", "--data-dir", str(data_dir),
           "--targets", "lfw,agedb_30,cfp_fp", "--nfolds", "3", "--batch-size", "5",
           "--json", str(out_json), "--plot", str(out_png), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "agedb_30.bin not found" in proc.stderr
    rows = table_rows(proc.stdout)
    assert list(rows) == ["lfw", "cfp_fp"]  # in --targets order, the missing one skipped
    assert re.search(r"^\| Flip +\| False +\| True +\|$", proc.stdout, re.M)

    report = json.loads(out_json.read_text())
    assert report["missing"][0].endswith("agedb_30.bin") and report["flip_mode"] == "sum"
    # The same numbers in process, from the network that was exported.
    targets = {"lfw": load_bin(str(data_dir / "lfw.bin")),
               "cfp_fp": load_bin(str(data_dir / "cfp_fp.bin"))}
    expect = evaluate_targets(net, targets, batch_size=5, nfolds=3, progress=False)
    for name, (acc0, std0, acc1, std1) in rows.items():
        flip, noflip = report["targets"][name]["flip"], report["targets"][name]["noflip"]
        for got, want in ((flip, expect[name]), (noflip, expect[name]["noflip"])):
            for key in ("accuracy", "accuracy_std", "val", "auc", "eer"):
                assert got[key] == pytest.approx(want[key], abs=1e-6), key
        assert (float(acc0), float(std0)) == (round(noflip["accuracy"], 6),
                                              round(noflip["accuracy_std"], 6))
        assert (float(acc1), float(std1)) == (round(flip["accuracy"], 6),
                                              round(flip["accuracy_std"], 6))
        assert len(flip["roc_fpr"]) == len(flip["roc_tpr"]) >= 2 and len(flip["tpr"]) == 400
        assert flip["num_pairs"] == 6 and flip["nfolds"] == 3

    from matplotlib.image import imread
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(str(out_png)).shape[:2] == (480, 640)
    # only what the test and the script wrote: no temporary left beside the outputs
    assert sorted(os.listdir(tmp_path)) == sorted(["tiny-symbol.json", "tiny-0000.params",
                                                   "res.json", "roc.png"])


def test_eval_script_zoo_model_in_process(data_dir, tmp_path, capsys):
    from gluonfr.model_zoo import get_model

    net = get_model("mobilefacenet")
    params = str(tmp_path / "mobilefacenet-0.params")
    net.save_parameters(params)
    script = load_script()
    code = script.main(["--model", "mobilefacenet", "--params", params, "--data-dir",
                        str(data_dir), "--targets", "lfw", "--nfolds", "3", "--no-flip",
                        "--batch-size", "12", "--quiet"])
    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert list(rows) == ["lfw"] and rows["lfw"][2] is None  # one column: no flip
    images, issame = load_bin(str(data_dir / "lfw.bin"))
    emb = net(mx.nd.array(images.asnumpy().transpose(0, 3, 1, 2), dtype="float32")).asnumpy()
    ref = verification(emb, issame, nfolds=3)
    assert float(rows["lfw"][0]) == pytest.approx(ref["accuracy"], abs=1e-6)


def test_eval_script_reports_missing_data(tmp_path, capsys):
    script = load_script()
    assert script.main(["--model", "mobilefacenet", "--data-dir", str(tmp_path),
                        "--targets", "lfw", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "lfw.bin not found" in err and "none of lfw found" in err
    assert script.main(["--model", "mobilefacenet", "--data-dir", str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit):
        script.main(["--data-dir", str(tmp_path)])  # neither --model nor --symbol
    with pytest.raises(SystemExit):
        script.main(["--model", "m", "--data-dir", ".", "--ctx", "tpu:0"])


def test_parse_ctx():
    assert parse_ctx("cpu:0, cpu:1") == [mx.cpu(0), mx.cpu(1)]
    assert parse_ctx("cpu") == parse_ctx("") == parse_ctx(None) == [mx.cpu(0)]
    assert parse_ctx("gpu:1,0", check=False) == [mx.gpu(1), mx.gpu(0)]
    assert parse_ctx("GPU", check=False) == [mx.gpu(0)]
    for bad, match in [("tpu:0", "not a device"), ("gpu:x", "device number"),
                       ("cpu:0,cpu:0", "more than once"), ("cpu,,cpu:1", "empty"),
                       ("cpu:-1", "device number")]:
        with pytest.raises(ValueError, match=match):
            parse_ctx(bad)
    if mx.context.num_gpus() == 0:
        with pytest.raises(ValueError, match="sees 0 GPU"):
            parse_ctx("gpu:0")


def test_as_context_list_is_the_one_ctx_normalisation():
    assert as_context_list(mx.cpu(1)) == [mx.cpu(1)]
    assert as_context_list([mx.cpu(0), mx.cpu(1)]) == [mx.cpu(0), mx.cpu(1)]
    assert as_context_list(c for c in [mx.cpu(2)]) == [mx.cpu(2)]  # any iterable
    assert as_context_list("cpu:0,cpu:1") == parse_ctx("cpu:0,cpu:1")
    assert as_context_list(None) == [mx.cpu(0)]
    for bad in ([], [mx.cpu(), "cpu"], 3):
        with pytest.raises(ValueError, match="ctx must be an mxnet Context"):
            as_context_list(bad)
