"""extract_embeddings against a numpy forward pass of a linear network."""
from gluonfr.metrics import combine_flip, extract_embeddings, forward_images

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn


def linear_net(dim=5, ctx=None, in_units=6 * 4 * 3):
    """Flatten + Dense: its output is a numpy matrix product, and it is not mirror-symmetric,
    so layout (HWC -> NCHW), value range and the flip axis all show in the result."""
    net = nn.HybridSequential()
    net.add(nn.Flatten(), nn.Dense(dim, in_units=in_units))
    net.initialize(mx.init.Uniform(0.01), ctx=ctx or mx.cpu())
    return net


def numpy_forward(net, images_hwc):
    dense = net[1]
    w, b = dense.weight.data(dense.weight.list_ctx()[0]).asnumpy(), \
        dense.bias.data(dense.bias.list_ctx()[0]).asnumpy()
    x = images_hwc.astype(np.float64).transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)
    return x @ w.T.astype(np.float64) + b


def images(n, seed=0, h=6, w=4):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("n,batch_size", [(6, 64), (10, 4), (8, 8)])  # N < bs, short last, exact
def test_embeddings_match_numpy_for_any_batching(n, batch_size):
    net = linear_net()
    imgs = images(n)
    emb = extract_embeddings(net, mx.nd.array(imgs, dtype="uint8"), batch_size=batch_size,
                             flip=False, progress=False)
    assert emb.dtype == np.float32 and emb.shape == (n, 5)
    np.testing.assert_allclose(emb, numpy_forward(net, imgs), rtol=1e-5, atol=1e-4)


def test_flip_sum_and_concat_use_the_mirror_image():
    net = linear_net()
    imgs = images(7, seed=1)
    plain = numpy_forward(net, imgs)
    mirrored = numpy_forward(net, imgs[:, :, ::-1, :])  # flip along the image width
    assert not np.allclose(plain, mirrored)
    nd_imgs = mx.nd.array(imgs, dtype="uint8")
    summed = extract_embeddings(net, nd_imgs, batch_size=3, mode="sum", progress=False)
    concat = extract_embeddings(net, imgs, batch_size=3, mode="concat", progress=False)
    assert summed.shape == (7, 5) and concat.shape == (7, 10)
    np.testing.assert_allclose(summed, plain + mirrored, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(concat, np.hstack([plain, mirrored]), rtol=1e-5, atol=1e-4)


def test_two_cpu_contexts_give_the_same_embeddings_as_one():
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = linear_net(ctx=ctx)
    imgs = mx.nd.array(images(11, seed=2), dtype="uint8")
    one = extract_embeddings(net, imgs, ctx=mx.cpu(0), batch_size=4, progress=False)
    # batch 4 splits 2 + 2; the last batch of 3 splits 2 + 1; batch 1 uses one device.
    two = extract_embeddings(net, imgs, ctx=ctx, batch_size=4, progress=False)
    single = extract_embeddings(net, imgs, ctx=ctx, batch_size=1, progress=False)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(single, one, rtol=1e-5, atol=1e-4)


def test_inference_mode_even_inside_autograd_record():
    net = nn.HybridSequential()
    net.add(nn.BatchNorm(in_channels=3), nn.Flatten(), nn.Dense(4, in_units=72))
    net.initialize()
    bn = net[0]
    bn.running_mean.set_data(mx.nd.array([100.0, 120.0, 140.0]))
    bn.running_var.set_data(mx.nd.array([900.0, 1600.0, 2500.0]))
    imgs = images(5, seed=3)
    outside = extract_embeddings(net, imgs, flip=False, progress=False)
    with autograd.record():
        inside = extract_embeddings(net, imgs, flip=False, progress=False)
        x = mx.nd.array(imgs.transpose(0, 3, 1, 2), dtype="float32")
        batch_stats = net(x).asnumpy()  # training mode: batch statistics
    np.testing.assert_array_equal(inside, outside)
    assert not np.allclose(batch_stats, outside)


def test_tuple_output_uses_the_embedding():
    class WithLogits(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.body = nn.Dense(3, in_units=72)

        def hybrid_forward(self, F, x):
            emb = self.body(x)
            return emb, emb * 2

    net = WithLogits()
    net.initialize()
    orig, flipped = forward_images(net, images(4), flip=True, progress=False)
    assert orig.shape == flipped.shape == (4, 3)


def test_bad_input_is_named():
    net = linear_net()
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        extract_embeddings(net, images(2).transpose(0, 3, 1, 2), progress=False)
    with pytest.raises(ValueError, match="flip mode"):
        extract_embeddings(net, images(2), mode="mean", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_embeddings(net, images(2), batch_size=0, progress=False)
    with pytest.raises(ValueError, match="live on"):
        extract_embeddings(net, images(2), ctx=[mx.cpu(0), mx.cpu(1)], progress=False)
    with pytest.raises(ValueError, match="same shape"):
        combine_flip(np.zeros((2, 3)), np.zeros((2, 4)))
