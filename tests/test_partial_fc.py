"""gluonfr.nn.PartialFC against the replicated NormDense + margin loss + SGD it replaces:
equal losses, embedding gradients and centres at sample_rate=1 over 1, 2 and 3 CPU
contexts; sampling (positives kept, uniform negatives, only sampled rows updated);
re-sharding checkpoints and the merged classifier."""
import os
import threading

from gluonfr.engine.checkpoint import merge_classifier
from gluonfr.engine.collective import Collective
from gluonfr.loss import ArcFaceLoss, CosFaceLoss, get_loss
from gluonfr.nn import NormDense, PartialFC, read_classifier_slices, shard_range
from gluonfr.nn.partial_fc import worker_file

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon, nd
from scipy import stats

C, D, N = 1000, 16, 8
LR, WD, MOM = 0.1, 5e-4, 0.9


def _ctx(k):
    return [mx.cpu(i) for i in range(k)]


def _batches(steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.standard_normal((N, D)).astype(np.float32)
        y = rng.integers(0, C, N)
        y[1] = y[0]  # a class twice in the batch
        out.append((x, y))
    return out


def _centres(seed=1):
    return (np.random.default_rng(seed).standard_normal((C, D)) * 0.01).astype(np.float32)


def _replicated(loss, steps):
    """Loss, dL/dx per step and the centres after each step: NormDense + loss + Trainer."""
    head = NormDense(C, D)
    head.initialize()
    head.weight.set_data(nd.array(_centres()))
    trainer = gluon.Trainer(head.collect_params(), "sgd",
                            {"learning_rate": LR, "wd": WD, "momentum": MOM})
    out = []
    for x, y in steps:
        x = nd.array(x)
        x.attach_grad()
        with autograd.record():
            value = loss(head(x), nd.array(y))
        value.backward()
        trainer.step(N)
        out.append((value.asnumpy(), x.grad.asnumpy(), head.weight.data().asnumpy()))
    return out


def _sharded_step(pfc, loss, x, y, labels=list):
    """One multi-shard step; returns (loss, dL/dx) of the whole batch on the host."""
    xs = [nd.array(part, ctx=c) for part, c in zip(np.array_split(x, len(pfc.ctx)), pfc.ctx)]
    for e in xs:
        e.attach_grad()
    with autograd.record():
        embs = [e * 1.0 for e in xs]  # a recorded "backbone" output
    losses, hits, grads = pfc.forward_backward(embs, labels(y), loss)
    autograd.backward(embs, head_grads=grads)
    pfc.update(LR, WD, MOM, rescale_grad=1.0 / N)
    return (np.concatenate([v.asnumpy() for v in losses]),
            np.concatenate([e.grad.asnumpy() for e in xs]),
            np.concatenate([h.asnumpy() for h in hits]))


@pytest.mark.parametrize("make_loss", [lambda: ArcFaceLoss(s=64.0, m=0.5),
                                       lambda: get_loss("combined", s=32.0, m1=1.0, m2=0.3,
                                                        m3=0.2)])
def test_one_shard_call_equals_norm_dense_exactly(make_loss):
    steps = _batches(3)
    ref = _replicated(make_loss(), steps)
    pfc = PartialFC(C, D, collective=Collective.local())  # one worker: no calls on it
    pfc.set_full_weight(_centres())
    loss = make_loss()
    for (x, y), (r_loss, r_grad, r_weight) in zip(steps, ref):
        x = nd.array(x)
        x.attach_grad()
        with autograd.record():
            cos, lab = pfc(x, y)
            value = loss(cos, lab)
        value.backward()
        pfc.update(LR, WD, MOM, rescale_grad=1.0 / N)
        assert cos.shape == (N, C)
        np.testing.assert_array_equal(lab.asnumpy(), y)
        np.testing.assert_allclose(value.asnumpy(), r_loss, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(x.grad.asnumpy(), r_grad, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(pfc.full_weight(), r_weight, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("devices", [1, 2, 3])
def test_sharded_softmax_equals_the_replicated_head(devices):
    steps = _batches(3, seed=devices)
    loss = ArcFaceLoss(s=64.0, m=0.5)
    ref = _replicated(loss, steps)
    pfc = PartialFC(C, D, ctx=_ctx(devices))
    pfc.set_full_weight(_centres())
    assert [r for r in pfc.ranges] == [shard_range(C, devices, g) for g in range(devices)]
    # labels as a device array, a numpy array, a list
    as_labels = [nd.array, np.asarray, list][devices - 1]
    for (x, y), (r_loss, r_grad, r_weight) in zip(steps, ref):
        value, grad, _ = _sharded_step(pfc, loss, x, y, as_labels)
        np.testing.assert_allclose(value, r_loss, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, r_grad, rtol=0, atol=1e-5 * np.abs(r_grad).max())
        # a step moves a centre of norm ~0.04 by ~10 (the gradient of a normalised row
        # scales with 1 / its norm): float32 rounding is relative to that
        np.testing.assert_allclose(pfc.full_weight(), r_weight, rtol=0,
                                   atol=1e-5 * np.abs(r_weight).max())
    assert pfc.num_update == 3


def test_slice_rule_matches_insightface():
    # C % S = 2: the first two shards hold one row more, the slices tile [0, C)
    ranges = [shard_range(10, 4, g) for g in range(4)]
    assert ranges == [(0, 3), (3, 3), (6, 2), (8, 2)]
    with pytest.raises(ValueError, match="shard 4"):
        shard_range(10, 4, 4)


def test_sampling_keeps_the_positives_and_updates_only_sampled_rows():
    pfc = PartialFC(C, D, sample_rate=0.1, ctx=_ctx(2), seed=5)
    pfc.set_full_weight(_centres())
    loss = CosFaceLoss(s=32.0, m=0.35)
    before_w, before_m = pfc.full_weight(), None
    for x, y in _batches(3, seed=9):
        draws = pfc._sample(y)  # the same draw forward_backward makes at this num_update
        value, _, _ = _sharded_step(pfc, loss, x, y)
        assert np.isfinite(value).all()
        sampled = np.zeros(C, bool)
        for (start, num), (index, local) in zip(pfc.ranges, draws):
            assert len(index) == int(0.1 * num) == len(np.unique(index))
            inside = (y >= start) & (y < start + num)
            # every positive is sampled and its label points at its own row
            np.testing.assert_array_equal(index[local[inside]], y[inside] - start)
            assert (local[~inside] == -1).all()
            sampled[start + index] = True
        after_w = pfc.full_weight()
        after_m = np.concatenate([m.asnumpy() for m in pfc.momentum])
        changed = (after_w != before_w).any(axis=1)
        np.testing.assert_array_equal(changed, sampled)  # wd too: unsampled rows stay
        if before_m is not None:
            np.testing.assert_array_equal(after_m[~sampled], before_m[~sampled])
        else:
            assert (after_m[~sampled] == 0).all() and (after_m[sampled] != 0).any(axis=1).all()
        before_w, before_m = after_w, after_m


def test_negatives_are_uniform_without_replacement():
    pfc = PartialFC(C, D, sample_rate=0.1, ctx=_ctx(2), seed=0)
    labels = np.array([3, 3, 17, 250, 499, 500, 777, 999])
    start, num = pfc.ranges[0]
    positives = np.unique(labels[labels < num])
    others = np.setdiff1d(np.arange(num), positives)
    draws, keep = 2000, int(0.1 * num) - positives.size
    counts = np.zeros(num)
    for t in range(draws):
        pfc.num_update = t
        index = pfc._sample(labels)[0][0]
        assert len(np.unique(index)) == len(index) == int(0.1 * num)
        counts[index] += 1
    assert (counts[positives] == draws).all()
    expected = draws * keep / others.size
    chi2 = ((counts[others] - expected) ** 2 / expected).sum()
    # a sampler preferring the lower half of the rows by 10% gives about 700 here
    assert chi2 < stats.chi2.ppf(0.999, others.size - 1), chi2


def test_sample_rate_one_keeps_every_class_and_the_draw_depends_on_the_step():
    pfc = PartialFC(C, D, sample_rate=0.5, seed=1)
    y = np.arange(N)
    a = pfc._sample(y)[0][0]
    assert len(a) == C // 2
    pfc.num_update = 1
    assert not np.array_equal(a, pfc._sample(y)[0][0])
    full = PartialFC(C, D)
    assert full._sample(y)[0][0] is None


def _trained(devices, steps=2):
    pfc = PartialFC(C, D, ctx=_ctx(devices))
    pfc.set_full_weight(_centres())
    loss = ArcFaceLoss(s=64.0, m=0.5)
    for x, y in _batches(steps, seed=4):
        _sharded_step(pfc, loss, x, y)
    return pfc, loss


@pytest.mark.parametrize("devices", [1, 3])
def test_saved_on_two_contexts_resumes_on_one_and_three(tmp_path, devices):
    saved, loss = _trained(2)
    path = str(tmp_path / "head.params")
    saved.save_parameters(path)
    resumed = PartialFC(C, D, ctx=_ctx(devices))
    resumed.load_parameters(path)
    assert resumed.num_update == saved.num_update == 2
    stored = saved.full_weight()
    np.testing.assert_array_equal(resumed.full_weight(), stored)
    np.testing.assert_array_equal(np.concatenate([m.asnumpy() for m in resumed.momentum]),
                                  np.concatenate([m.asnumpy() for m in saved.momentum]))
    x, y = _batches(1, seed=11)[0]  # the next step: momentum carried over, same result
    a, b = _sharded_step(saved, loss, x, y), _sharded_step(resumed, loss, x, y)
    np.testing.assert_allclose(b[0], a[0], rtol=1e-5)
    w = saved.full_weight()
    np.testing.assert_allclose(resumed.full_weight(), w, rtol=0, atol=1e-5 * np.abs(w).max())
    np.testing.assert_array_equal(merge_classifier(path), stored)


class _Rank:
    """What saving needs of a collective: the rank and the worker count."""

    def __init__(self, rank, num_workers):
        self.rank, self.num_workers = rank, num_workers


def test_merge_checks_that_the_slices_tile_the_classes(tmp_path):
    full = _centres()
    head = str(tmp_path / "m-10-head.params")
    for rank in range(3):  # three workers of two devices each: six slices
        pfc = PartialFC(C, D, ctx=_ctx(2), collective=_Rank(rank, 3))
        pfc.set_full_weight(full)
        pfc.save_parameters(worker_file(head, rank))
    np.testing.assert_array_equal(merge_classifier(head), full)
    assert [s["start"] for s in read_classifier_slices(
        [worker_file(head, r) for r in range(3)])] == [shard_range(C, 6, g)[0] for g in range(6)]
    rank2 = worker_file(head, 2)
    os.rename(rank2, str(tmp_path / "elsewhere.params"))
    with pytest.raises(ValueError, match=r"m-10-head\.rank1\.params.*missing"):
        merge_classifier(head)
    one = str(tmp_path / "one.params")
    whole = PartialFC(C, D)
    whole.save_parameters(one)
    with pytest.raises(ValueError, match=r"one\.params: its slice \[0, 1000\) overlaps"):
        merge_classifier([head, one])
    other = str(tmp_path / "other.params")
    PartialFC(C + 1, D).save_parameters(other)
    with pytest.raises(ValueError, match=r"other\.params: a slice of 1001 classes"):
        merge_classifier([head, worker_file(head, 1), other])
    norm = NormDense(C, D)
    norm.initialize()
    plain = str(tmp_path / "plain.params")
    norm.save_parameters(plain)
    with pytest.raises(ValueError, match=r"plain\.params: holds no Partial FC"):
        merge_classifier(plain)
    with pytest.raises(ValueError, match="a classifier of 1000 classes"):
        PartialFC(C, D + 1).load_parameters(one)


class _ThreadCollective:
    """Workers as threads of one process, their collectives met at a barrier (a stand-in for
    the kvstore Collective of part B, with the same calls and rank order)."""

    def __init__(self, rank, shared):
        self.rank, self.num_workers, self._shared = rank, shared["n"], shared

    def _meet(self, x):
        box, barrier = self._shared["box"], self._shared["barrier"]
        box[self.rank] = x.asnumpy()
        barrier.wait()
        parts = [box[r] for r in range(self.num_workers)]
        barrier.wait()  # everyone has read before the next call overwrites
        return parts

    def all_gather(self, x):
        return nd.array(np.concatenate(self._meet(x)), ctx=x.context, dtype=x.dtype)

    def all_reduce(self, x, op="sum"):
        parts = self._meet(x)
        out = np.maximum.reduce(parts) if op == "max" else np.sum(parts, axis=0)
        return nd.array(out, ctx=x.context, dtype=x.dtype)


def test_two_workers_of_two_devices_equal_one_process():
    steps = _batches(2, seed=21)
    loss = ArcFaceLoss(s=64.0, m=0.5)
    ref = _replicated(loss, steps)
    shared = {"n": 2, "box": {}, "barrier": threading.Barrier(2)}
    results, errors = {}, []

    def worker(rank):
        try:
            pfc = PartialFC(C, D, ctx=_ctx(2), collective=_ThreadCollective(rank, shared))
            pfc.set_full_weight(_centres())
            half = slice(rank * N // 2, (rank + 1) * N // 2)
            out = []
            for x, y in steps:
                xs = [nd.array(p, ctx=c) for p, c in zip(np.array_split(x[half], 2), pfc.ctx)]
                losses, _, grads = pfc.forward_backward(xs, y[half], loss)
                pfc.update(LR, WD, MOM, rescale_grad=1.0 / N)
                out.append((np.concatenate([v.asnumpy() for v in losses]),
                            np.concatenate([g.asnumpy() for g in grads]), pfc.full_weight()))
            results[rank] = (pfc.ranges, out)
        except Exception as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)
            shared["barrier"].abort()

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    assert results[1][0][0] == shard_range(C, 4, 2)  # global shard = rank * devices + device
    for step, (r_loss, r_grad, r_weight) in enumerate(ref):
        loss_ = np.concatenate([results[r][1][step][0] for r in range(2)])
        grad = np.concatenate([results[r][1][step][1] for r in range(2)])
        weight = np.concatenate([results[r][1][step][2] for r in range(2)])
        np.testing.assert_allclose(loss_, r_loss, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, r_grad, rtol=0, atol=1e-5 * np.abs(r_grad).max())
        np.testing.assert_allclose(weight, r_weight, rtol=0, atol=1e-5 * np.abs(r_weight).max())


def test_merge_classifier_command(tmp_path, capsys):
    from gluonfr.cli.merge_classifier import main

    pfc = PartialFC(C, D, ctx=_ctx(2), collective=_Rank(0, 2))
    head = str(tmp_path / "m-3-head.params")
    pfc.save_parameters(head)
    out = str(tmp_path / "centres.npy")
    assert main([head, "--out", out]) == 2  # rank 1's slices are missing
    assert "m-3-head.params" in capsys.readouterr().err and not os.path.exists(out)
    other = PartialFC(C, D, ctx=_ctx(2), collective=_Rank(1, 2))
    other.save_parameters(worker_file(head, 1))
    assert main([head, "--out", out]) == 0
    np.testing.assert_array_equal(np.load(out), np.concatenate([pfc.full_weight(),
                                                                other.full_weight()]))


def test_heads_that_cannot_run_on_slices_are_refused():
    pfc = PartialFC(C, D, ctx=_ctx(2))
    x = [nd.zeros((4, D), ctx=c) for c in pfc.ctx]
    for name in ("subcenter_arcface", "adacos", "l2softmax"):
        kw = {"classes": C, "in_units": D, "alpha": 24.0} if name == "l2softmax" else (
            {"classes": C} if name == "adacos" else {})
        with pytest.raises(ValueError, match="PartialFC cannot train"):
            pfc.forward_backward(x, np.zeros(8), get_loss(name, **kw))
    with pytest.raises(ValueError, match="forward_backward"):
        pfc(x[0], np.zeros(4))


@pytest.mark.parametrize("name", ["arcface", "cosface", "combined", "normface"])
def test_margin_logits_leave_rows_without_a_positive_alone(name):
    loss = get_loss(name, return_logits=True)
    rng = np.random.default_rng(2)
    cos = nd.array(rng.uniform(-1, 1, (6, 9)))
    cos[0, 0] = 1.0  # the edge of arccos: still finite
    label = nd.array([0, 3, -1, 8, -1, 2])
    out = loss.margin_logits(cos, label).asnumpy()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[[2, 4]], loss.s * cos.asnumpy()[[2, 4]], rtol=1e-6)
    valid = [0, 1, 3, 5]
    _, logits = loss(cos[valid], label[valid])  # what the loss itself feeds its softmax
    np.testing.assert_allclose(out[valid], logits.asnumpy(), rtol=1e-6)


def test_float16_embeddings_meet_a_float32_classifier_and_softmax():
    x, y = _batches(1, seed=8)[0]
    loss = ArcFaceLoss(s=64.0, m=0.5)
    runs = {}
    for dtype in ("float32", "float16"):
        pfc = PartialFC(C, D, ctx=_ctx(2))
        pfc.set_full_weight(_centres())
        embs = [nd.array(p, ctx=c, dtype=dtype) for p, c in zip(np.split(x, 2), pfc.ctx)]
        losses, _, grads = pfc.forward_backward(embs, y, loss, embedding_grad_scale=1024.0)
        pfc.update(LR, WD, MOM, rescale_grad=1.0 / N)
        assert all(g.dtype == np.dtype(dtype) for g in grads)  # back in the backbone's dtype
        assert all(w.dtype == np.float32 for w in pfc.weight) and losses[0].dtype == np.float32
        runs[dtype] = (np.concatenate([v.asnumpy() for v in losses]),
                       np.concatenate([g.asnumpy().astype(np.float64) for g in grads]))
    # the float16 inputs are rounded to ~1e-3 relative; everything after them is float32
    np.testing.assert_allclose(runs["float16"][0], runs["float32"][0], rtol=2e-3, atol=2e-2)
    g32 = runs["float32"][1]
    np.testing.assert_allclose(runs["float16"][1], g32, rtol=0, atol=5e-3 * np.abs(g32).max())


def test_checkpoints_of_a_sliced_head_keep_and_prune_every_workers_file(tmp_path):
    from gluonfr.engine.checkpoint import CheckpointManager
    from gluonfr.engine.head import PartialFCHead

    net = gluon.nn.Dense(2, in_units=3)
    net.initialize()
    manager = CheckpointManager(str(tmp_path), "m", keep_last=1, run_id="r")
    heads = [PartialFCHead(PartialFC(C, D, ctx=_ctx(2), collective=_Rank(r, 2)),
                           ArcFaceLoss()) for r in range(2)]
    for it in (1, 2):
        head = str(tmp_path / f"m-{it}-head.params")
        heads[1].save_parameters(head)  # what worker 1 writes before rank 0 saves
        manager.save(it, net, heads[0], lambda p: nd.save(p, {}), {"time": float(it)})
    (tmp_path / "m-2-head.rankx.params").write_bytes(b"not a worker's file")
    names = sorted(os.listdir(tmp_path))
    assert "m-1-head.rank1.params" not in names and "m-1.json" not in names  # pruned, all
    assert "m-2-head.rank1.params" in names
    resumed = PartialFC(C, D, ctx=_ctx(3))
    resumed.load_parameters(str(tmp_path / "m-2-head.params"))  # both workers' slices
    np.testing.assert_array_equal(resumed.full_weight(), np.concatenate(
        [h.pfc.full_weight() for h in heads]))


def test_one_shard_call_samples_and_remaps_the_labels():
    x, y = _batches(1, seed=13)[0]
    pfc = PartialFC(C, D, sample_rate=0.1)
    pfc.set_full_weight(_centres())
    cos, lab = pfc(nd.array(x), y)
    assert cos.shape == (N, 100) and pfc.last_num_sampled == 100
    full = NormDense(C, D)
    full.initialize()
    full.weight.set_data(nd.array(_centres()))
    ref = full(nd.array(x)).asnumpy()
    lab = lab.asnumpy().astype(int)
    # each remapped label's column is the cosine of the true class
    np.testing.assert_allclose(cos.asnumpy()[np.arange(N), lab], ref[np.arange(N), y],
                               rtol=1e-5, atol=1e-6)
