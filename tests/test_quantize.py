import json
import os

import gluonfr  # noqa: F401
from gluonfr.utils import load_quantized, quantize_int8, save_quantized
from gluonfr.utils.quantize import calibration_images

import mxnet as mx
import numpy as np
import pytest
from test_onnx_export import _small_net


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def quantized():
    net = _small_net()
    net.hybridize(static_alloc=True, static_shape=True)
    rng = np.random.RandomState(0)
    calib = rng.uniform(0, 255, size=(32, 12, 12, 3)).astype(np.uint8)  # NHWC as crops are
    qnet = quantize_int8(net, calib, calib_mode="naive", num_calib=32, image_size=(12, 12))
    return net, qnet


def test_int8_graph_is_quantized_and_close_to_float32(quantized):
    net, qnet = quantized
    ops = {s.attr("op_name") for s in qnet(mx.sym.var("data")).get_internals()}
    assert "_contrib_quantize_v2" in ops and "_sg_mkldnn_conv" in ops
    x = np.random.RandomState(1).uniform(0, 255, size=(8, 3, 12, 12)).astype(np.float32)
    ref = net(mx.nd.array(x)).asnumpy()
    out = qnet(mx.nd.array(x)).asnumpy()
    assert out.shape == ref.shape and out.dtype == np.float32
    assert not np.array_equal(out, ref)  # int8 rounding happened
    assert _cosines(out, ref).mean() >= 0.99


def test_save_load_round_trip_is_exact(quantized, tmp_path):
    _, qnet = quantized
    sym_path, params_path = save_quantized(qnet, str(tmp_path / "q"))
    assert sorted(os.listdir(tmp_path)) == ["q-0000.params", "q-symbol.json"]
    loaded = load_quantized(str(tmp_path / "q"))
    x = np.random.RandomState(2).uniform(0, 255, size=(4, 3, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded(mx.nd.array(x)).asnumpy(),
                                  qnet(mx.nd.array(x)).asnumpy())
    with pytest.raises(FileNotFoundError, match="nope-symbol.json"):
        load_quantized(str(tmp_path / "nope"))


def test_calibration_sources(tmp_path):
    import cv2

    rng = np.random.RandomState(3)
    crops = rng.randint(0, 256, size=(3, 12, 12, 3)).astype(np.uint8)
    folder = tmp_path / "crops" / "id0"
    folder.mkdir(parents=True)
    for i, c in enumerate(crops):
        cv2.imwrite(str(folder / f"{i}.png"), c[:, :, ::-1])  # png: lossless, BGR on disk
    got = calibration_images(str(tmp_path / "crops"), image_size=(12, 12))
    np.testing.assert_array_equal(got, crops.transpose(0, 3, 1, 2).astype(np.float32))
    assert calibration_images(crops, num=2, image_size=(12, 12)).shape == (2, 3, 12, 12)
    with pytest.raises(ValueError, match="align them first"):
        calibration_images(crops, image_size=(112, 112))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        calibration_images(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no such file or folder"):
        calibration_images(str(tmp_path / "missing"))


def test_face_embedder_int8_runs_the_saved_network(tmp_path):
    from gluonfr import FaceEmbedder
    from gluonfr.model_zoo import get_model

    rng = np.random.RandomState(4)
    crops = rng.randint(0, 256, size=(4, 112, 112, 3)).astype(np.uint8)
    net = get_model("mobilefacenet")
    quantize_int8(net, crops, calib_mode="naive", path=str(tmp_path / "mbf"))
    qnet = load_quantized(str(tmp_path / "mbf"))
    with pytest.warns(UserWarning, match="randomly initialised"):
        emb = FaceEmbedder("mobilefacenet", precision="int8", calib=str(tmp_path / "mbf"),
                           flip=False)
    x = mx.nd.array(crops.transpose(0, 3, 1, 2).astype(np.float32))
    ref = qnet(x).asnumpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.embed_crops(crops), ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="calib="):
        FaceEmbedder("mobilefacenet", precision="int8")


def test_eval_int8_calibrates_on_a_bin_and_saves(tmp_path):
    from gluonfr.cli import eval as eval_cli
    from gluonfr.data import load_bin
    from gluonfr.metrics import evaluate_targets

    from test_eval_script import write_bin

    write_bin(tmp_path / "lfw.bin", 8, seed=5, size=12)
    net = _small_net()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 12, 12)))
    net.export(str(tmp_path / "small"), 0)
    argv = ["--symbol", str(tmp_path / "small-symbol.json"),
            "--params", str(tmp_path / "small-0000.params"), "--data-dir", str(tmp_path),
            "--targets", "lfw", "--image-size", "12,12", "--nfolds", "2", "--quiet",
            "--int8", "--calib", str(tmp_path / "lfw.bin"), "--calib-mode", "naive",
            "--save-int8", str(tmp_path / "q"), "--json", str(tmp_path / "r.json")]
    assert eval_cli.main(argv) == 0

    got = json.load(open(tmp_path / "r.json"))["targets"]["lfw"]["flip"]["xnorm"]
    targets = {"lfw": load_bin(str(tmp_path / "lfw.bin"), (12, 12))}
    int8 = evaluate_targets(load_quantized(str(tmp_path / "q")), targets, nfolds=2,
                            progress=False)["lfw"]["xnorm"]
    fp32 = evaluate_targets(net, targets, nfolds=2, progress=False)["lfw"]["xnorm"]
    assert got == pytest.approx(int8, rel=1e-6) and got != pytest.approx(fp32, rel=1e-6)
    with pytest.raises(SystemExit):
        eval_cli.main(argv[:10] + ["--int8"])  # no --calib
