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


def _sum_types(qnet):
    """(type of the tensor added, type of the output) of every int8 convolution with a sum."""
    qsym = qnet(mx.sym.var("data"))
    internals = qsym.get_internals()
    _, types, _ = internals.infer_type(data="float32")
    type_of = dict(zip(internals.list_outputs(), types))
    nodes = json.loads(qsym.tojson())["nodes"]
    out = []
    for node in nodes:
        attrs = node.get("attrs", {})
        if node["op"] == "_sg_mkldnn_conv" and attrs.get("with_sum") == "true":
            added = nodes[node["inputs"][-5][0]]["name"]  # inputs end: sum, its 4 min / max
            out.append((type_of[added + "_output"], type_of[node["name"] + "_output"]))
    return out


def _float_output(net, layer, x):
    internals = net(mx.sym.var("data")).get_internals()
    block = mx.gluon.SymbolBlock(internals[layer], mx.sym.var("data"), params=net.collect_params())
    return block(x).asnumpy()


def test_naive_calibration_ranges_are_the_float32_min_max_over_every_image():
    # 30 crops in batches of 8: four batches, the last one padded; each range must be the
    # min / max of that layer's float32 output over exactly these 30 images, computed here
    # with the float32 graph's own internals
    net = _small_net()
    net.hybridize()
    calib = np.random.RandomState(6).uniform(0, 255, size=(30, 12, 12, 3)).astype(np.uint8)
    qnet = quantize_int8(net, calib, calib_mode="naive", num_calib=30, batch_size=8,
                         image_size=(12, 12))
    ranges = {s.name: (float(s.attr("min_calib_range")), float(s.attr("max_calib_range")))
              for s in qnet(mx.sym.var("data")).get_internals()
              if s.attr("min_calib_range") is not None}
    x = mx.nd.array(calib.transpose(0, 3, 1, 2).astype(np.float32))

    def float_range(layer):
        out = _float_output(net, layer, x)
        return out.min(), out.max()

    pixels = calib.astype(np.float64)
    normalize, bn0, bn1 = (net[i].name for i in (0, 2, 5))
    y = _float_output(net, f"{bn0}_fwd_output", x)
    alpha = net[3].alpha.data().asnumpy().reshape(1, -1, 1, 1)
    r = np.maximum(-y, 0)

    def depthwise_bn(a):  # the depthwise conv + BN, without BN's shift
        a = mx.nd.array(a)
        return (net[5](net[4](a)) - net[5](net[4](mx.nd.zeros_like(a)))).asnumpy()

    def span(a):
        return a.min(), a.max()

    # the PReLU is folded (gluonfr.utils.prelu_fold): prelu(y) = y + (1 - a) * r with
    # r = relu(-y); the depthwise conv runs on (1 - a) * r, then on y adding the first run
    expected = {
        f"{normalize}__mulscalar0_0_quantize": ((pixels.min() - 127.5) / 128,
                                                (pixels.max() - 127.5) / 128),
        "quantized_sg_mkldnn_conv_bn_0": span(y),
        "quantized_sg_mkldnn_conv_act_2": span(r),
        "quantized_sg_mkldnn_conv_3": span(depthwise_bn((1 - alpha) * r)),
        "quantized_sg_mkldnn_conv_add_1": float_range(f"{bn1}_fwd_output"),
    }
    assert sorted(ranges) == sorted(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(ranges[name], want, atol=2e-6, err_msg=name)


def test_compare_int8_against_numpy_cosines_and_both_evaluations(tmp_path, capsys,
                                                                   monkeypatch):
    from gluonfr.cli import eval as eval_cli
    from gluonfr.data import load_bin
    from gluonfr.metrics import evaluate_targets
    from gluonfr.utils.quantize import compare_int8

    from test_eval_script import write_bin

    write_bin(tmp_path / "lfw.bin", 8, seed=7, size=12)
    targets = {"lfw": load_bin(str(tmp_path / "lfw.bin"), (12, 12))}
    net = _small_net()
    net.hybridize()
    qnet = quantize_int8(net, str(tmp_path / "lfw.bin"), calib_mode="naive",
                         image_size=(12, 12), path=str(tmp_path / "q"))
    got = compare_int8(net, qnet, targets, nfolds=2)["lfw"]

    x = mx.nd.array(targets["lfw"][0].asnumpy().transpose(0, 3, 1, 2).astype(np.float32))
    xs = mx.nd.concat(x, mx.nd.flip(x, axis=3), dim=0)
    cos = _cosines(qnet(xs).asnumpy().astype(np.float64), net(xs).asnumpy().astype(np.float64))
    assert got["cosine_mean"] == pytest.approx(cos.mean(), abs=1e-5)
    assert got["cosine_min"] == pytest.approx(cos.min(), abs=1e-5)
    acc = {k: evaluate_targets(m, targets, nfolds=2, progress=False)["lfw"]["accuracy"]
           for k, m in (("float32", net), ("int8", qnet))}
    assert got["float32"] == pytest.approx(acc["float32"]) and got["int8"] == acc["int8"]
    assert got["difference"] == pytest.approx(100 * (acc["int8"] - acc["float32"]))
    assert got["met"] == (got["difference"] >= -0.3 and cos.mean() >= 0.99)
    # the pairs' distance change, from the two networks' outputs by the protocol's formula
    n = len(x)
    dist = []
    for out in (net(xs).asnumpy(), qnet(xs).asnumpy()):
        f = out[:n].astype(np.float64) + out[n:]
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        dist.append(((f[0::2] - f[1::2]) ** 2).sum(1))
    assert got["distance_sd"] == pytest.approx(np.std(dist[1] - dist[0]), rel=1e-3, abs=1e-6)
    assert 0 < got["noise_cosine"] < 1

    net.export(str(tmp_path / "small"), 0)
    import gluonfr.metrics
    import gluonfr.metrics.evaluate

    runs = []
    real = gluonfr.metrics.forward_images

    def counted(model, images, **kw):
        runs.append(kw.get("desc"))
        return real(model, images, **kw)

    monkeypatch.setattr(gluonfr.metrics, "forward_images", counted)
    monkeypatch.setattr(gluonfr.metrics.evaluate, "forward_images", counted)
    assert eval_cli.main(["--symbol", str(tmp_path / "small-symbol.json"),
                          "--params", str(tmp_path / "small-0000.params"),
                          "--data-dir", str(tmp_path), "--targets", "lfw",
                          "--image-size", "12,12", "--nfolds", "2", "--quiet", "--int8",
                          "--calib", str(tmp_path / "q"), "--compare-float32"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if "int8 vs float32" in ln]
    assert line == [f"[lfw] int8 vs float32: accuracy {got['int8']:.4f} vs "
                    f"{got['float32']:.4f} ({got['difference']:+.2f} points), embedding "
                    f"cosine mean {got['cosine_mean']:.4f} min {got['cosine_min']:.4f}: "
                    f"{'within' if got['met'] else 'OUTSIDE'} the int8 bar; int8 changes "
                    f"the pairs' distances by {got['distance_sd']:.4f} (sd), random moves "
                    f"that change them as much move the accuracy by "
                    f"{got['noise_mean']:+.2f} +- {got['noise_sd']:.2f} points"]
    # float32 once and int8 once: the evaluation reuses compare_int8's int8 embeddings
    assert runs == ["lfw float32", "lfw int8"]
    with pytest.raises(SystemExit):
        eval_cli.main(["--model", "mobilefacenet", "--data-dir", str(tmp_path),
                       "--compare-float32"])  # without --int8


def test_mobilefacenet_int8_keeps_prelu_in_int8_and_the_embeddings_close():
    # a 32 px MobileFaceNet whose BatchNorm statistics are those of procedural faces (three
    # training-mode passes), calibrated on 32 faces and checked on 16 others
    from gluonfr.data import synthetic
    from gluonfr.model_zoo import get_model

    from mxnet import autograd

    faces = np.stack([synthetic.render_identity_image(0, i % 8, i // 8, size=32)
                      for i in range(48)])
    x = mx.nd.array(faces.transpose(0, 3, 1, 2).astype(np.float32))
    mx.random.seed(0)
    net = get_model("mobilefacenet", input_size=32)
    net.hybridize()
    for _ in range(3):
        with autograd.record(train_mode=True):
            net(x[:32])
    qnet = quantize_int8(net, faces[:32], num_calib=32, image_size=(32, 32))
    ops = [s.attr("op_name") for s in qnet(mx.sym.var("data")).get_internals()]
    # every PReLU is folded into the convolutions (gluonfr.utils.prelu_fold): no elementwise
    # int8 operator is left, the graph is int8 convolutions from the first quantize to the
    # one dequantize before the float32 embedding layer
    assert not {"_contrib_quantized_batch_norm", "_contrib_quantized_act",
                "_contrib_quantized_elemwise_add"} & set(ops)
    assert ops.count("_contrib_dequantize") == 1 and ops.count("BatchNorm") == 1
    sums = _sum_types(qnet)
    # MXNet 1.9.1 adds a tensor into an int8 convolution's output correctly only when both
    # have one type (uint8 into int8 or int8 into uint8 come back wrong): the fold keeps it so
    assert len(sums) >= 33 and all(a == b for a, b in sums)
    ref, out = net(x[32:]).asnumpy(), qnet(x[32:]).asnumpy()
    cos = _cosines(out.astype(np.float64), ref.astype(np.float64))
    # measured 0.988 (naive); int8 rounding of every layer of a random network, so > 0.97
    # tells a working quantization from a broken one (a wrong scale gives far less)
    assert cos.mean() >= 0.97 and cos.min() >= 0.9
    assert not np.array_equal(out, ref)


def test_perturb_gives_each_row_the_asked_cosine():
    from gluonfr.utils.quantize import perturb

    rng = np.random.RandomState(3)
    x = rng.normal(size=(50, 16)) * rng.uniform(0.1, 10, size=(50, 1))
    for c in (0.9999, 0.99, 0.5):
        y = perturb(x, c, np.random.RandomState(0))
        np.testing.assert_allclose(_cosines(x, y), c, rtol=1e-12)
        assert not np.allclose(y, perturb(x, c, np.random.RandomState(1)))  # random
    np.testing.assert_array_equal(perturb(x, 1.0, rng), x)


def test_matched_cosine_finds_the_move_that_changes_the_distances_as_asked():
    from gluonfr.utils.quantize import flip_distances, matched_cosine, perturb

    rng = np.random.RandomState(5)
    emb = rng.normal(size=(400, 32))
    emb_flip = emb + 0.3 * rng.normal(size=emb.shape)
    base = flip_distances(emb, emb_flip)
    for cosine in (0.9999, 0.999, 0.99):
        # the distance change random moves of this cosine make, over many draws
        sd = np.mean([np.std(flip_distances(perturb(emb, cosine, rng),
                                            perturb(emb_flip, cosine, rng)) - base)
                      for _ in range(20)])
        got = matched_cosine(emb, emb_flip, sd, seed=1)
        assert 1 - got == pytest.approx(1 - cosine, rel=0.1)
    assert matched_cosine(emb, emb_flip, 0.0) == 1.0


def test_noise_resolution_is_zero_without_noise_or_on_separated_pairs_not_on_close_ones():
    from gluonfr.utils.quantize import noise_resolution, perturb

    rng = np.random.RandomState(0)
    n, d = 200, 32
    issame = np.tile([True, False], n // 2)
    first = rng.normal(size=(n, d))
    # far apart: genuine pairs identical, impostors independent (cosine about 0)
    second = np.where(issame[:, None], first, rng.normal(size=(n, d)))
    emb = np.stack([first, second], 1).reshape(2 * n, d).astype(np.float32)
    images = np.zeros((2 * n, 1, 1, 3), np.uint8)
    assert noise_resolution(images, issame, emb, emb, 1.0, draws=3) == (0.0, 0.0)
    assert noise_resolution(images, issame, emb, emb, 0.999, draws=5) == (0.0, 0.0)
    # every pair near the threshold: genuine and impostor cosines interleave closely
    base = rng.normal(size=(n, d))
    target = np.where(issame, 0.31, 0.29)
    other = np.array([perturb(b[None], t, rng)[0] for b, t in zip(base, target)])
    emb = np.stack([base, other], 1).reshape(2 * n, d).astype(np.float32)
    mean, sd = noise_resolution(images, issame, emb, emb, 0.999, draws=5)
    assert mean < -5 and sd > 0  # noise of cosine 0.999 scrambles a 0.02 margin
