"""The new classification heads against independent float64 numpy formulas.

Each reference below is written from the paper's formula with ``arccos`` and scipy's
``logsumexp`` (the library uses the addition formula / a half-angle arctan, ``pick`` and
``index_copy``). Stateful heads are checked against the recurrence run in numpy.
"""
import math

from gluonfr.loss import (
    AdaCosLoss,
    AdaFaceLoss,
    CircleLoss,
    CurricularFaceLoss,
    MagFaceLoss,
    MVSoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    get_loss,
)

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from scipy.special import logsumexp

C = 7


# ----------------------------------------------------------------------------- references
def ce(logits, label):
    rows = np.arange(len(label))
    return logsumexp(logits, axis=1) - logits[rows, label]


def with_target(cos, label, target, scale, others=None):
    rows = np.arange(len(label))
    logits = scale * (cos if others is None else others)
    logits = np.array(logits, dtype=np.float64)
    logits[rows, label] = scale * target
    return logits


def arc_phi(c, m):
    return np.where(c > np.cos(np.pi - m), np.cos(np.arccos(c) + m), c - np.sin(np.pi - m) * m)


def ref_sphereface(cos, label, state, s=64.0, m=4, base=1000.0, gamma=0.12, power=1.0,
                   lmin=5.0):
    # ``state`` is the one after this call, which counts it; lambda uses the count before
    lam = max(lmin, base * (1 + gamma * (state["iteration"] - 1)) ** (-power))
    c = cos[np.arange(len(label)), label]
    theta = np.arccos(c)
    k = np.minimum(np.floor(m * theta / np.pi), m - 1)
    psi = (-1.0) ** k * np.cos(m * theta) - 2 * k
    return ce(with_target(cos, label, (lam * c + psi) / (1 + lam), s), label)


def next_sphereface(cos, label, state):
    return {"iteration": state["iteration"] + 1}


def ref_mv(cos, label, state=None, s=32.0, m=0.35, t=0.2, margin="am"):
    c = cos[np.arange(len(label)), label]
    f = c - m if margin == "am" else np.cos(np.arccos(c) + m)
    others = np.where(cos > f[:, None], (1 + t) * cos + t, cos)
    return ce(with_target(cos, label, f, s, others), label)


def next_curricular(cos, label, state, alpha=0.01):
    c = cos[np.arange(len(label)), label]
    return {"t": alpha * c.mean() + (1 - alpha) * state["t"]}


def ref_curricular(cos, label, state, s=64.0, m=0.5):
    t = state["t"]  # the state after this batch's update (the head updates first)
    c = cos[np.arange(len(label)), label]
    phi = np.cos(np.arccos(c) + m)
    others = np.where(cos > phi[:, None], cos * (t + cos), cos)
    return ce(with_target(cos, label, arc_phi(c, m), s, others), label)


def next_adacos(cos, label, state):
    s_old = state["s"]
    n = len(label)
    mask = np.ones_like(cos, dtype=bool)
    mask[np.arange(n), label] = False
    b_avg = np.exp(s_old * cos[mask]).sum() / n
    theta = np.sort(np.arccos(cos[np.arange(n), label]))
    med = theta[(n - 1) // 2]
    return {"s": np.log(b_avg) / np.cos(min(np.pi / 4, med))}


def ref_adacos(cos, label, state):
    return ce(state["s"] * cos, label)


def next_adaface(cos, label, state, norms, t_alpha=0.01):
    n = np.clip(norms, 0.001, 100)
    return {"batch_mean": t_alpha * n.mean() + (1 - t_alpha) * state["batch_mean"],
            "batch_std": t_alpha * n.std(ddof=1) + (1 - t_alpha) * state["batch_std"]}


def ref_adaface(cos, label, state, norms, s=64.0, m=0.4, h=0.333):
    n = np.clip(norms, 0.001, 100)
    z = np.clip(h * (n - state["batch_mean"]) / (state["batch_std"] + 0.001), -1, 1)
    c = cos[np.arange(len(label)), label]
    theta = np.clip(np.arccos(c) - m * z, 0.001, np.pi - 0.001)
    return ce(with_target(cos, label, np.cos(theta) - (m + m * z), s), label)


def ref_magface(cos, label, state, norms, s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8,
                lambda_g=20.0):
    a = np.clip(norms, l_a, u_a)
    m = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
    c = cos[np.arange(len(label)), label]
    loss = ce(with_target(cos, label, arc_phi(c, m), s), label)
    return loss + lambda_g * (a / u_a ** 2 + 1 / a)


def ref_circle(cos, label, state=None, s=256.0, m=0.25, fixed=None):
    """``fixed``: the cosines the (gradient-free) weights alpha are taken from."""
    base = cos if fixed is None else fixed
    rows = np.arange(len(label))
    alpha_n = np.maximum(base + m, 0)
    alpha_p = np.maximum(1 + m - base[rows, label], 0)
    sp = cos[rows, label]
    return ce(with_target(cos, label, alpha_p * (sp - 1 + m), s, alpha_n * (cos - m)), label)


def ref_subcenter(cos, label, state=None):
    c = cos[np.arange(len(label)), label]
    return ce(with_target(cos, label, arc_phi(c, 0.5), 64.0), label)


# name -> (factory, reference, next-state or None, needs norms, initial state)
HEADS = {
    "sphereface": (lambda **kw: SphereFaceLoss(**kw), ref_sphereface, next_sphereface, False,
                   {"iteration": 0.0}),
    "mv_softmax": (lambda **kw: MVSoftmaxLoss(**kw), ref_mv, None, False, None),
    "mv_softmax_arc": (lambda **kw: MVSoftmaxLoss(margin="arc", **kw),
                       lambda c, y, st: ref_mv(c, y, margin="arc"), None, False, None),
    "curricularface": (lambda **kw: CurricularFaceLoss(**kw), ref_curricular, next_curricular,
                       False, {"t": 0.0}),
    "adacos": (lambda **kw: AdaCosLoss(classes=C, **kw), ref_adacos, next_adacos, False,
               {"s": math.sqrt(2) * math.log(C - 1)}),
    "adaface": (lambda **kw: AdaFaceLoss(**kw), ref_adaface, next_adaface, True,
                {"batch_mean": 20.0, "batch_std": 100.0}),
    "magface": (lambda **kw: MagFaceLoss(**kw), ref_magface, None, True, None),
    "circle": (lambda **kw: CircleLoss(**kw), ref_circle, None, False, None),
    "subcenter_arcface": (lambda **kw: SubCenterArcFaceLoss(**kw), ref_subcenter, None, False,
                          None),
}

TH = math.cos(math.pi - 0.5)
EDGE_TARGETS = np.array([math.cos(1e-4), 0.9, 0.5, 1e-3, -0.3, TH + 1e-3, TH - 1e-3,
                         math.cos(3.0), -0.999, 0.7, 0.1, -0.6])


def make_batch(targets, classes=C, seed=0):
    rng = np.random.RandomState(seed)
    cos = rng.uniform(-1, 1, size=(len(targets), classes))
    label = rng.randint(0, classes, size=len(targets))
    cos[np.arange(len(targets)), label] = targets
    norms = rng.uniform(5.0, 120.0, size=len(targets))  # both sides of MagFace's [10, 110]
    return cos, label, norms


def call(loss, cos, label, norms, dtype="float64", train=True, ctx=None, grad=False):
    ctx = ctx or mx.cpu()
    x = mx.nd.array(cos, dtype=dtype, ctx=ctx)
    n = mx.nd.array(norms, dtype=dtype, ctx=ctx)
    x.attach_grad()
    n.attach_grad()
    args = (x, mx.nd.array(label, ctx=ctx)) + ((n,) if loss.needs else ())
    with autograd.record(train_mode=train):
        out = loss(*args)
    if grad:
        out.backward()
    return out, x.grad, n.grad


def reference(name, cos, label, norms, state):
    """Reference loss and the state after the call (the head updates first, then uses it)."""
    _, ref, nxt, needs, _ = HEADS[name]
    extra = (norms,) if needs else ()
    new = nxt(cos, label, state, *extra) if nxt else state
    return ref(cos, label, new, *extra), new


# ----------------------------------------------------------------------------- forward values
@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("name", sorted(HEADS))
def test_forward_matches_numpy_float64(name, hybridize):
    make, _, _, _, state = HEADS[name]
    loss = make()
    if hybridize:
        loss.hybridize()
    cos, label, norms = make_batch(np.concatenate([EDGE_TARGETS, [1.0, -1.0]]), seed=1)
    got = call(loss, cos, label, norms)[0].asnumpy()
    inner = slice(0, len(EDGE_TARGETS))
    # the state update uses the whole batch: compute it from the unit-cosine rows too
    want, _ = reference(name, cos, label, norms, state)
    scale = 256.0 if name == "circle" else 64.0
    np.testing.assert_allclose(got[inner], want[inner], rtol=1e-9, atol=1e-8)
    # cos = +-1 exactly: the radicands are floored at 1e-12 (theta off by ~1.4e-6 rad)
    np.testing.assert_allclose(got[inner.stop:], want[inner.stop:], rtol=0, atol=scale * 1e-5)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_returned_logits_give_the_loss(name):
    make = HEADS[name][0]
    cos, label, norms = make_batch(EDGE_TARGETS, seed=2)
    loss, logits = call(make(return_logits=True), cos, label, norms)[0]
    ce_of_logits = ce(logits.asnumpy().astype(np.float64), label)
    if name == "magface":  # the regulariser is added to the cross-entropy
        a = np.clip(norms, 10, 110)
        ce_of_logits = ce_of_logits + 20.0 * (a / 110 ** 2 + 1 / a)
    np.testing.assert_allclose(loss.asnumpy(), ce_of_logits, rtol=1e-9, atol=1e-8)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", sorted(HEADS))
def test_gradient_matches_finite_differences_float64(name):
    make, _, nxt, needs, state = HEADS[name]
    targets = np.array([0.95, 0.6, 0.2, -0.3, TH + 0.02, TH - 0.02, -0.95])
    cos, label, norms = make_batch(targets, classes=5, seed=4)
    if name == "adacos":
        make = lambda **kw: AdaCosLoss(classes=5, **kw)  # noqa: E731
        state = {"s": math.sqrt(2) * math.log(4)}
    loss = make()
    loss.hybridize()
    weights = np.random.RandomState(5).uniform(0.2, 1.5, size=len(label))
    x = mx.nd.array(cos, dtype="float64")
    n = mx.nd.array(norms, dtype="float64")
    x.attach_grad()
    n.attach_grad()
    with autograd.record():
        out = loss(x, mx.nd.array(label), *((n,) if needs else ()))
    out.backward(mx.nd.array(weights, dtype="float64"))
    # the state (and circle's weights) carry no gradient: hold them at the unperturbed values
    extra = (norms,) if needs else ()
    used = nxt(cos, label, state, *extra) if nxt else state
    ref = HEADS[name][1]
    if name == "circle":
        def f(c, nn):
            return ref_circle(c, label, fixed=cos)
    else:
        def f(c, nn):
            return ref(c, label, used, *((nn,) if needs else ()))
    h = 1e-6
    num = np.zeros_like(cos)
    for idx in np.ndindex(*cos.shape):
        up, down = cos.copy(), cos.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (weights * (f(up, norms) - f(down, norms))).sum() / (2 * h)
    np.testing.assert_allclose(x.grad.asnumpy(), num, rtol=1e-5, atol=1e-5)
    if needs:
        num_n = np.zeros_like(norms)
        if name == "magface":  # gradients reach the norm through m(a) and g(a)
            for i in range(len(norms)):
                up, down = norms.copy(), norms.copy()
                up[i] += h
                down[i] -= h
                num_n[i] = (weights * (f(cos, up) - f(cos, down))).sum() / (2 * h)
            assert np.abs(num_n).max() > 0.01
        # AdaFace's norms are detached (the authors' code): zero gradient
        np.testing.assert_allclose(n.grad.asnumpy(), num_n, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- dtypes, devices
@pytest.mark.parametrize("name", sorted(HEADS))
def test_float16_input_is_computed_in_float32(name):
    make = HEADS[name][0]
    cos, label, norms = make_batch(EDGE_TARGETS, seed=7)
    cos16 = cos.astype(np.float16)
    loss16 = make()
    loss16.hybridize()
    out16, grad16, _ = call(loss16, cos16, label, norms.astype(np.float16), "float16",
                            grad=True)
    assert out16.dtype == np.float32 and grad16.dtype == np.float16
    # the same head on the float16 values held in float32
    out32 = call(make(), cos16.astype(np.float32), label,
                 norms.astype(np.float16).astype(np.float32), "float32")[0]
    np.testing.assert_allclose(out16.asnumpy(), out32.asnumpy(), rtol=1e-5, atol=1e-4)
    assert np.isfinite(grad16.asnumpy().astype(np.float32)).all()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_context_list_gives_each_device_the_single_device_result(name):
    make, _, nxt, _, _ = HEADS[name]
    ctxs = [mx.cpu(0), mx.cpu(1)]
    multi, single = make(), make()
    multi.initialize(ctx=ctxs)
    multi.hybridize()
    cos, label, norms = make_batch(EDGE_TARGETS, seed=8)
    halves = [slice(0, 6), slice(6, 12)]
    for ctx, part in zip(ctxs, halves):
        got = call(multi, cos[part], label[part], norms[part], "float32", ctx=ctx)[0]
        assert got.context == ctx
        single_head = make()
        want = call(single_head, cos[part], label[part], norms[part], "float32")[0]
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-6, atol=1e-5)
        if nxt:  # each device's copy of the state moved with its own share of the batch
            np.testing.assert_allclose(list(multi.state(ctx).values()),
                                       list(single_head.state().values()), rtol=1e-6)
    del single


@pytest.mark.parametrize("name", sorted(HEADS))
def test_labels_out_of_range_are_refused(name):
    make = HEADS[name][0]
    cos, label, norms = make_batch(EDGE_TARGETS[:4], seed=9)
    for bad in (C, -1, 2.5):
        lab = label.astype(np.float64)
        lab[1] = bad
        with pytest.raises(ValueError, match=r"label: 1 of 4 labels are not integer class ids"):
            call(make(), cos, lab, norms)


def test_heads_that_need_norms_say_so():
    cos, label, _ = make_batch(EDGE_TARGETS[:4])
    for loss in (AdaFaceLoss(), MagFaceLoss()):
        assert loss.needs == ("norms",)
        with pytest.raises(TypeError, match="norms"):
            loss(mx.nd.array(cos), mx.nd.array(label))


# ----------------------------------------------------------------------------- state
@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("name", sorted(n for n in HEADS if HEADS[n][2]))
def test_state_after_n_steps_follows_the_numpy_recurrence(name, hybridize):
    make, _, nxt, needs, state = HEADS[name]
    loss = make()
    if hybridize:
        loss.hybridize()
    rng = np.random.RandomState(10)
    for step in range(6):
        cos, label, norms = make_batch(rng.uniform(-0.9, 0.99, size=8), seed=20 + step)
        got = call(loss, cos, label, norms)[0].asnumpy()
        want, state = reference(name, cos, label, norms, state)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
        for key, value in loss.state().items():
            np.testing.assert_allclose(value, state[key], rtol=1e-6, err_msg=key)
    # outside training (autograd.predict_mode) the state is used but not moved
    before = loss.state()
    call(loss, cos, label, norms, train=False)
    assert loss.state() == before


def test_sphereface_lambda_anneals_and_is_saved_with_the_head(tmp_path):
    loss = SphereFaceLoss()
    loss.hybridize()
    cos, label, norms = make_batch(EDGE_TARGETS[:4])
    for _ in range(3):
        call(loss, cos, label, norms)
    assert loss.state() == {"iteration": 3.0}
    assert loss.lambda_at(0) == 1000.0 and loss.lambda_at(10 ** 6) == 5.0
    path = str(tmp_path / "head.params")
    loss.save_parameters(path)
    again = SphereFaceLoss()
    again.load_parameters(path)
    assert again.state() == {"iteration": 3.0}


def test_registry_builds_every_new_head():
    for name in ("sphereface", "mv_softmax", "curricularface", "adaface", "magface", "circle",
                 "subcenter_arcface"):
        assert type(get_loss(name)).__name__.lower().startswith(name.split("_")[0][:4])
    assert isinstance(get_loss("adacos", classes=10), AdaCosLoss)
    assert get_loss("subcenter_arcface", k=4).centers_per_class == 4


@pytest.mark.parametrize("name", ["curricularface", "adaface", "sphereface"])
def test_the_training_head_moves_the_state_hybridized_as_imperatively(name):
    from gluonfr.engine.head import TrainHead
    from gluonfr.nn import NormDense

    rng = np.random.RandomState(11)
    emb, label = rng.randn(8, 6) * 5, rng.randint(0, C, size=8)
    runs = []
    for hybridize in (False, True):
        head = TrainHead(NormDense(C, 6), HEADS[name][0]())
        head.initialize(mx.init.Xavier(rnd_type="gaussian"))
        head.classifier.weight.set_data(mx.nd.array(np.random.RandomState(12).randn(C, 6)))
        if hybridize:
            head.hybridize()
        losses = []
        for _ in range(3):
            with autograd.record():
                loss, _ = head(mx.nd.array(emb), mx.nd.array(label))
            loss.backward()
            losses.append(loss.asnumpy())
        runs.append((np.array(losses), head.loss.state()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    assert runs[1][1] == pytest.approx(runs[0][1], rel=1e-5)
    assert runs[1][1] != HEADS[name][4]  # the state moved


def test_combined_margin_applies_m1_m2_and_m3_together():
    # insightface's newer CombinedMarginLoss runs CosFace alone when m2 and m3 are both set
    from gluonfr.loss import CombinedMarginLoss

    cos, label, _ = make_batch(np.array([0.9, 0.5, 0.1, -0.2]), seed=13)
    rows = np.arange(len(label))
    c = cos[rows, label]
    for m1, m2, m3 in ((1.0, 0.3, 0.2), (1.2, 0.2, 0.1)):
        got = call(CombinedMarginLoss(s=32.0, m1=m1, m2=m2, m3=m3), cos, label, c)[0]
        want = ce(with_target(cos, label, np.cos(m1 * np.arccos(c) + m2) - m3, 32.0), label)
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-10)
        cos_only = ce(with_target(cos, label, c - m3, 32.0), label)
        assert (got.asnumpy() > cos_only + 1e-3).all()  # m1 / m2 are not dropped
