"""Embedding-space losses (centre, ring, git, LGM) and pair / triplet losses vs numpy loops."""
from gluonfr.loss import (
    CenterLoss,
    GitLoss,
    LGMLoss,
    MPSLoss,
    RingLoss,
    get_loss,
)

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from scipy.special import logsumexp

RNG = np.random.RandomState(0)
N, D, C = 10, 4, 3
EMB = RNG.randn(N, D)
LAB = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2])
CENTERS = RNG.randn(C, D)


# ----------------------------------------------------------------------------- references
def ref_center(f, y, c, lamda):
    return 0.5 * lamda * ((f - c[y]) ** 2).sum(1)


def ref_ring(f, r, lamda):
    return 0.5 * lamda * (np.linalg.norm(f, axis=1) - r) ** 2


def ref_git(f, y, c, lc, lg):
    out = np.zeros(len(y))
    for i in range(len(y)):
        push = [1 / (1 + ((f[i] - c[y[j]]) ** 2).sum()) for j in range(len(y)) if y[j] != y[i]]
        out[i] = 0.5 * lc * ((f[i] - c[y[i]]) ** 2).sum() + lg * (np.mean(push) if push else 0)
    return out


def ref_lgm(f, y, mu, log_var, alpha, lamda):
    var = np.exp(log_var)
    d = np.array([[0.5 * ((f[i] - mu[k]) ** 2 / var[k]).sum() for k in range(len(mu))]
                  for i in range(len(f))])
    half_logdet = 0.5 * log_var.sum(1)
    logits = -d - half_logdet
    rows = np.arange(len(y))
    logits[rows, y] -= alpha * d[rows, y]
    ce = logsumexp(logits, axis=1) - logits[rows, y]
    return ce + lamda * (d[rows, y] + half_logdet[y])


def ref_triplet(f, y, margin, mining):
    d = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
    out = np.zeros(len(y))
    for a in range(len(y)):
        pos = [p for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [n for n in range(len(y)) if y[n] != y[a]]
        if not pos or not neg:
            continue
        if mining == "batch_hard":
            out[a] = max(margin + max(d[a, pos]) - min(d[a, neg]), 0)
        else:
            out[a] = np.mean([max(margin + d[a, p] - d[a, n], 0) for p in pos for n in neg])
    return out


def ref_mps(a, b, margin):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    s = a @ b.T
    out = []
    for i in range(len(a)):
        others = [max(s[i, j], s[j, i]) for j in range(len(a)) if j != i]
        out.append(max(margin + max(others) - s[i, i], 0))
    return np.array(out)


def run(block, *arrays, params=None, dtype="float64", hybridize=False):
    """Forward + backward of ``sum(loss)``; returns (loss, input grads, param grads)."""
    if params is not None:
        block.initialize()
        block.cast(dtype)
        for name, value in params.items():
            getattr(block, name).set_data(mx.nd.array(value, dtype=dtype))
    if hybridize:
        block.hybridize()
    xs = [mx.nd.array(a, dtype=dtype) for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        out = block(*xs)
        value = out[0] if isinstance(out, tuple) else out
    value.backward()
    pgrads = {n: getattr(block, n).grad().asnumpy() for n in (params or {})}
    return value.asnumpy(), [x.grad.asnumpy() for x in xs], pgrads


def numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (f(up).sum() - f(down).sum()) / (2 * h)
    return g


# ----------------------------------------------------------------------------- auxiliary terms
@pytest.mark.parametrize("hybridize", [False, True])
def test_center_loss(hybridize):
    loss, (g_f, _), pg = run(CenterLoss(C, D, lamda=0.5), EMB, LAB,
                             params={"centers": CENTERS}, hybridize=hybridize)
    np.testing.assert_allclose(loss, ref_center(EMB, LAB, CENTERS, 0.5), rtol=1e-12)
    np.testing.assert_allclose(g_f, numeric_grad(lambda f: ref_center(f, LAB, CENTERS, 0.5),
                                                 EMB), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(pg["centers"], numeric_grad(
        lambda c: ref_center(EMB, LAB, c, 0.5), CENTERS), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("hybridize", [False, True])
def test_ring_loss(hybridize):
    loss, (g_f, _), pg = run(RingLoss(lamda=0.3), EMB, LAB, params={"radius": [1.7]},
                             hybridize=hybridize)
    np.testing.assert_allclose(loss, ref_ring(EMB, 1.7, 0.3), rtol=1e-9)
    np.testing.assert_allclose(g_f, numeric_grad(lambda f: ref_ring(f, 1.7, 0.3), EMB),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(pg["radius"], numeric_grad(
        lambda r: ref_ring(EMB, r[0], 0.3), np.array([1.7])), rtol=1e-6)


@pytest.mark.parametrize("hybridize", [False, True])
def test_git_loss(hybridize):
    loss, (g_f, _), pg = run(GitLoss(C, D, lamda_c=0.3, lamda_g=0.7), EMB, LAB,
                             params={"centers": CENTERS}, hybridize=hybridize)
    np.testing.assert_allclose(loss, ref_git(EMB, LAB, CENTERS, 0.3, 0.7), rtol=1e-9)
    np.testing.assert_allclose(g_f, numeric_grad(
        lambda f: ref_git(f, LAB, CENTERS, 0.3, 0.7), EMB), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(pg["centers"], numeric_grad(
        lambda c: ref_git(EMB, LAB, c, 0.3, 0.7), CENTERS), rtol=1e-5, atol=1e-8)
    # a batch of one class has nothing to push from: only the pull term
    same = np.zeros(4, dtype=int)
    got = run(GitLoss(C, D, lamda_c=0.3, lamda_g=0.7), EMB[:4], same,
              params={"centers": CENTERS})[0]
    np.testing.assert_allclose(got, ref_center(EMB[:4], same, CENTERS, 0.3), rtol=1e-9)


@pytest.mark.parametrize("hybridize", [False, True])
def test_lgm_loss(hybridize):
    mu, log_var = RNG.randn(C, D), RNG.uniform(-0.5, 0.5, size=(C, D))
    loss, (g_f, _), pg = run(LGMLoss(C, D, alpha=0.3, lamda=0.2, learn_var=True), EMB, LAB,
                             params={"mean": mu, "log_var": log_var}, hybridize=hybridize)
    np.testing.assert_allclose(loss, ref_lgm(EMB, LAB, mu, log_var, 0.3, 0.2), rtol=1e-9)
    np.testing.assert_allclose(g_f, numeric_grad(
        lambda f: ref_lgm(f, LAB, mu, log_var, 0.3, 0.2), EMB), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pg["log_var"], numeric_grad(
        lambda v: ref_lgm(EMB, LAB, mu, v, 0.3, 0.2), log_var), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="not integer class ids"):
        run(LGMLoss(C, D), EMB, np.where(LAB == 2, 5, LAB), params={"mean": mu})
    assert LGMLoss(C, D).log_var.grad_req == "null"  # identity covariances by default


def test_auxiliary_labels_out_of_range_are_refused():
    for block in (CenterLoss(C, D), GitLoss(C, D)):
        block.initialize()
        with pytest.raises(ValueError, match=r"label: 1 of 10 labels"):
            block(mx.nd.array(EMB), mx.nd.array(np.where(np.arange(N) == 3, C, LAB)))


# ----------------------------------------------------------------------------- pairs / triplets
@pytest.mark.parametrize("hybridize", [False, True])
def test_contrastive_is_the_euclidean_formula(hybridize):
    a, b = RNG.randn(8, D), RNG.randn(8, D)
    b[0] = a[0] + 1e-3  # a close genuine pair
    b[1] = a[1] + 0.05  # a close impostor pair: inside the margin
    same = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    loss = get_loss("contrastive", margin=2.0)
    got, (ga, gb, _), _ = run(loss, a, b, same, hybridize=hybridize)

    def ref(x, y):
        d = np.sqrt(((x - y) ** 2).sum(1))
        return same * d ** 2 + (1 - same) * np.maximum(2.0 - d, 0) ** 2

    np.testing.assert_allclose(got, ref(a, b), rtol=1e-10)
    np.testing.assert_allclose(ga, numeric_grad(lambda x: ref(x, b), a), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gb, numeric_grad(lambda y: ref(a, y), b), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"same: 4 of 8 labels are not 0 or 1: \[0\]=2.0"):
        loss(mx.nd.array(a), mx.nd.array(b), mx.nd.array(np.where(same == 1, 2, same)))


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("mining", ["batch_hard", "batch_all"])
def test_triplet_mining_against_loops(mining, hybridize):
    lab = LAB.copy()
    lab[-1] = 7  # an identity with a single image: no positive, loss 0
    loss = get_loss("triplet", margin=1.5, mining=mining)
    got, (g, _), _ = run(loss, EMB, lab, hybridize=hybridize)
    want = ref_triplet(EMB, lab, 1.5, mining)
    assert want[-1] == 0 and (want > 0).sum() >= 3
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g, numeric_grad(lambda f: ref_triplet(f, lab, 1.5, mining), EMB),
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="identity ids must be integers"):
        loss(mx.nd.array(EMB), mx.nd.array(lab + 0.5))


@pytest.mark.parametrize("hybridize", [False, True])
def test_mps_against_loops(hybridize):
    a, b = RNG.randn(6, D), RNG.randn(6, D)
    b[:3] = a[:3] + 0.1 * RNG.randn(3, D)
    got, (ga, gb), _ = run(MPSLoss(margin=0.4), a, b, hybridize=hybridize)
    np.testing.assert_allclose(got, ref_mps(a, b, 0.4), rtol=1e-9)
    np.testing.assert_allclose(ga, numeric_grad(lambda x: ref_mps(x, b, 0.4), a), rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(ValueError, match="N >= 2"):
        MPSLoss()(mx.nd.array(a[:1]), mx.nd.array(b[:1]))
