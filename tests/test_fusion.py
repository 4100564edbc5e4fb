import gluonfr  # noqa: F401
from gluonfr.metrics import forward_images
from gluonfr.model_zoo import get_model
from gluonfr.utils import fuse
from gluonfr.utils.fusion import OneDNNBlock, fusion_available, is_fused

import mxnet as mx
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not fusion_available(), reason="MXNet without MKLDNN")


def _ops(block):
    return {s.attr("op_name") for s in block(mx.sym.var("data")).get_internals()}


@pytest.fixture(scope="module")
def small_mobilefacenet():
    mx.random.seed(0)
    net = get_model("mobilefacenet", input_size=32)
    rng = np.random.RandomState(0)
    # statistics and slopes away from their initial values, so that a wrong BatchNorm fold
    # or PReLU broadcast in the fused graph shows in the outputs
    for p in net.collect_params(".*running.*|.*gamma|.*beta|.*alpha").values():
        p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, size=p.shape)))
    net.hybridize()
    return net


def test_fused_graph_calls_in_a_row_read_back_like_the_plain_graph(small_mobilefacenet):
    net = small_mobilefacenet
    x = mx.nd.array(np.random.RandomState(1).uniform(0, 255, (4, 3, 32, 32)))
    xf = mx.nd.flip(x, axis=3)
    ref, ref_flip = net(x).asnumpy(), net(xf).asnumpy()
    fused = fuse(net, (1, 3, 32, 32))
    assert isinstance(fused, OneDNNBlock) and "_sg_mkldnn_conv" in _ops(fused)
    # MXNet 1.9.1 with static_shape: the second output cannot be read, a third call at
    # another batch size returns wrong numbers; all three are read after all three calls
    o1, o2, o3 = fused(x), fused(xf), fused(x[:3])
    scale = np.abs(ref).max()
    for out, want in ((o1, ref), (o2, ref_flip), (o3, ref[:3])):
        assert np.abs(out.asnumpy() - want).max() <= 1e-4 * scale
    assert not np.array_equal(o1.asnumpy(), ref)  # it is another graph, not the same one
    # the network itself is untouched: plain graph, same outputs
    assert not any(op.startswith("_sg_mkldnn") for op in _ops(net))
    np.testing.assert_array_equal(net(x).asnumpy(), ref)
    assert fuse(fused, (1, 3, 32, 32)) is fused and is_fused(fused)


def test_forward_images_fuses_by_default_and_can_opt_out(small_mobilefacenet, monkeypatch):
    from gluonfr.metrics import embeddings

    images = np.random.RandomState(2).randint(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    calls = []
    real = embeddings.fused
    monkeypatch.setattr(embeddings, "fused", lambda n, x: calls.append(n) or real(n, x))
    plain = forward_images(small_mobilefacenet, images, batch_size=2, progress=False,
                           fuse=False)
    assert calls == []
    got = forward_images(small_mobilefacenet, images, batch_size=2, progress=False)
    assert calls == [small_mobilefacenet]
    for a, b in zip(got, plain):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_face_embedder_runs_the_fused_graph_unless_told_not_to():
    from gluonfr import FaceEmbedder

    embedders = []
    for fuse_it in (True, False):
        mx.random.seed(3)  # the same random weights in both
        with pytest.warns(UserWarning, match="randomly initialised"):
            embedders.append(FaceEmbedder("mobilefacenet", flip=False, fuse=fuse_it))
    fast, plain = embedders
    assert isinstance(fast.net, OneDNNBlock) and not is_fused(plain.net)
    crops = np.random.RandomState(4).randint(0, 256, (2, 112, 112, 3)).astype(np.uint8)
    np.testing.assert_allclose(fast.embed_crops(crops), plain.embed_crops(crops), atol=1e-4)


def test_evaluate_targets_partitions_the_network_once_for_all_targets(small_mobilefacenet,
                                                                       monkeypatch):
    from gluonfr.metrics import evaluate_targets
    from gluonfr.utils import fusion

    rng = np.random.RandomState(3)
    targets = {name: (rng.randint(0, 256, (8, 32, 32, 3)).astype(np.uint8),
                      np.array([True, False, True, False])) for name in ("a", "b", "c")}
    partitions = []
    real = fusion.OneDNNBlock.optimize_for
    monkeypatch.setattr(fusion.OneDNNBlock, "optimize_for",
                        lambda self, *a, **k: partitions.append(1) or real(self, *a, **k))
    fused = evaluate_targets(small_mobilefacenet, targets, batch_size=4, nfolds=2,
                             progress=False)
    assert len(partitions) == 1
    plain = evaluate_targets(small_mobilefacenet, targets, batch_size=4, nfolds=2,
                             progress=False, fuse=False)
    assert len(partitions) == 1
    for name in targets:
        assert abs(fused[name]["xnorm"] - plain[name]["xnorm"]) <= 1e-4 * plain[name]["xnorm"]
