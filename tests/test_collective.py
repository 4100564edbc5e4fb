"""gluonfr.engine.collective: the single-process collective, argument errors, and every
operation of two workers on loopback (MXNet's launcher, 2 servers, arrays above the big-array
bound split over them) against numpy; in the same job, gluonfr.nn.PartialFC with each worker
holding half the classes against one process with the whole batch.

This file is also the workers' program: ``python test_collective.py worker OUT``.
"""
import os
import sys

import gluonfr  # noqa: F401  (before mxnet; in scheduler/server roles it runs the service)

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
#: Partial FC: sample rate 1 (model parallel) and 0.5 (sampled), three steps each
SAMPLE_RATES, PFC_STEPS = (1.0, 0.5), 3

# (name, shape, dtype) of the arrays each worker all-gathers; values from _rank_array
GATHERED = [("emb", (3, 4), "float32"), ("emb_last", (2, 4), "float32"),
            ("labels", (3,), "int32"), ("labels64", (4,), "int64"),
            ("big", (700, 3), "float32"), ("half", (2, 5), "float16")]
REDUCED = [("sum", (5, 7), "float32"), ("isum", (4,), "int32"), ("big_sum", (1500,), "float32"),
           ("max", (6,), "float32"), ("imax", (5,), "int64")]


def _rank_array(name, shape, dtype, rank):
    """The array worker ``rank`` sends (distinct per rank, negatives, exact big labels)."""
    rng = np.random.RandomState(sum(map(ord, name)) * 101 + rank)
    if dtype == "int64":  # beyond float64's exact integers
        return rng.randint(-2**62, 2**62, size=shape, dtype=np.int64)
    if dtype.startswith("int"):
        return rng.randint(-2**29, 2**29, size=shape).astype(dtype)
    return (rng.randn(*shape) * 3).astype(dtype)


def _worker(out_dir):
    from gluonfr.engine.collective import Collective
    from gluonfr.engine.distributed import close_kvstore

    import mxnet as mx
    import numpy as np

    kv = mx.kv.create("dist_sync")
    coll = Collective(kv)
    res = {"rank": np.array(coll.rank), "num_workers": np.array(coll.num_workers)}
    for name, shape, dtype in GATHERED:
        x = mx.nd.array(_rank_array(name, shape, dtype, coll.rank), dtype=dtype)
        got = coll.all_gather(x)
        assert got.dtype == x.dtype and got.context == x.context
        res["gather_" + name] = got.asnumpy()
    for name, shape, dtype in REDUCED:
        x = mx.nd.array(_rank_array(name, shape, dtype, coll.rank), dtype=dtype)
        got = coll.all_reduce(x, "max" if name.endswith("max") else "sum")
        assert got.dtype == x.dtype and got.shape == x.shape
        res["reduce_" + name] = got.asnumpy()
    # a second round on the same keys: results of this round, not an accumulation
    x = mx.nd.array(_rank_array("sum", (5, 7), "float32", coll.rank + 10))
    res["reduce_sum_again"] = coll.all_reduce(x).asnumpy()
    res.update(_partial_fc_steps(coll))
    # an optimizer on the servers turns pushes into updates: a new Collective must refuse
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.5))
    try:
        Collective(kv, key_base=Collective.KEY_BASE + 1000)
        res["refused"] = np.array("")
    except RuntimeError as err:
        res["refused"] = np.array(str(err))
    np.savez(os.path.join(out_dir, f"rank{coll.rank}.npz"), **res)
    close_kvstore(kv)  # both workers, now: not in the interpreter's exit


def _partial_fc_steps(coll):
    """Each worker holds half the classes and half of each global batch of
    test_partial_fc's steps; its losses, embedding gradients and slice after each step."""
    from gluonfr.loss import ArcFaceLoss
    from gluonfr.nn import PartialFC

    import test_partial_fc as ref

    half = slice(coll.rank * ref.N // 2, (coll.rank + 1) * ref.N // 2)
    out = {}
    for rate in SAMPLE_RATES:
        pfc = PartialFC(ref.C, ref.D, sample_rate=rate, collective=coll)
        pfc.set_full_weight(ref._centres())
        out[f"pfc{rate}_range"] = np.array(pfc.ranges[0])
        for step, (x, y) in enumerate(ref._batches(PFC_STEPS, seed=21)):
            losses, _, grads = pfc.forward_backward([mx.nd.array(x[half])], y[half],
                                                    ArcFaceLoss(s=64.0, m=0.5))
            pfc.update(ref.LR, ref.WD, ref.MOM, rescale_grad=1.0 / ref.N)
            out[f"pfc{rate}_{step}"] = np.concatenate(
                [losses[0].asnumpy()[:, None], grads[0].asnumpy()], axis=1)
            out[f"pfc{rate}_{step}_w"] = pfc.full_weight()
    return out


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    _worker(sys.argv[2])
    sys.exit(0)

from gluonfr.engine.collective import Collective  # noqa: E402

import pytest  # noqa: E402
from dist_launch import run_loopback_job  # noqa: E402


def test_local_collective_is_rank_0_of_1_and_returns_its_input():
    coll = Collective.local()
    assert (coll.rank, coll.num_workers) == (0, 1)
    x = mx.nd.array(np.arange(6).reshape(3, 2))
    assert coll.all_gather(x) is x
    assert coll.all_reduce(x) is x
    assert coll.all_reduce(x, op="max") is x
    assert "local" in repr(coll)


def test_bad_arguments_are_named():
    coll = Collective.local()
    with pytest.raises(ValueError, match="op must be one of sum, max, got 'mean'"):
        coll.all_reduce(mx.nd.ones((2,)), op="mean")
    with pytest.raises(TypeError, match="all_gather: x must be an mx.nd.NDArray, got ndarray"):
        coll.all_gather(np.ones(2))
    with pytest.raises(ValueError, match="needs a dist_sync kvstore, got 'local'"):
        Collective(mx.kv.create("local"))


def test_integers_travel_in_exact_float32_pieces_and_float64_is_refused():
    from gluonfr.engine.collective import _encode

    for dtype, values in [("int32", [0, 2_059_905, 2**31 - 1, -2**31, -7]),
                          ("int64", [2**53 + 1, -2**62 - 3, 29_000_000, -1, 0])]:
        x = mx.nd.array(np.array(values, dtype=dtype), dtype=dtype)
        wire, decode = _encode(x, "all_gather")
        assert wire.dtype == np.float32 and np.all(np.abs(wire.asnumpy()) < 2**16)
        back = decode(wire + 0, x)  # what an all-gather's sum with zeros returns
        assert back.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back.asnumpy(), values)
        # what the servers return for a sum over 256 workers sending these values (wrapping
        # as the integer dtype does)
        total = decode(wire * 256, x).asnumpy()
        np.testing.assert_array_equal(total, (np.array(values, dtype=np.int64) * 256).astype(
            dtype))
    emb = mx.nd.ones((2, 3))
    wire, _ = _encode(emb, "x")
    assert wire.dtype == np.float32
    with pytest.raises(TypeError, match="all_reduce: .*float64 comes back rounded to float32"):
        _encode(mx.nd.ones((2,), dtype="float64"), "all_reduce")


@pytest.mark.slow
def test_two_workers_gather_and_reduce_like_numpy(tmp_path):
    # 2 servers and a bound of 1000 elements: "big" and "big_sum" are split over both servers
    run_loopback_job([os.path.abspath(__file__), "worker", str(tmp_path)], workers=2, servers=2,
                     env={"MXNET_KVSTORE_BIGARRAY_BOUND": "1000"})
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for r, res in enumerate(ranks):
        assert int(res["rank"]) == r and int(res["num_workers"]) == 2
        for name, shape, dtype in GATHERED:
            want = np.concatenate([_rank_array(name, shape, dtype, k) for k in range(2)])
            got = res["gather_" + name]
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)  # bit for bit, rank order
        for name, shape, dtype in REDUCED:
            a, b = (_rank_array(name, shape, dtype, k) for k in range(2))
            want = np.maximum(a, b) if name.endswith("max") else a + b  # two addends: exact
            np.testing.assert_array_equal(res["reduce_" + name], want, err_msg=name)
        again = _rank_array("sum", (5, 7), "float32", 10) + _rank_array("sum", (5, 7),
                                                                         "float32", 11)
        np.testing.assert_array_equal(res["reduce_sum_again"], again)
        assert "came back as" in str(res["refused"]) and "update_on_kvstore=False" in str(
            res["refused"])
    _check_partial_fc(ranks)


def _check_partial_fc(ranks):
    """Two workers holding half the classes each = one process with the whole batch: the
    replicated head at rate 1; at rate 0.5 the same two shards as two devices of one
    process (the same samples: shard = rank * devices + device)."""
    from gluonfr.loss import ArcFaceLoss
    from gluonfr.nn import PartialFC, shard_range

    import test_partial_fc as ref

    steps = ref._batches(PFC_STEPS, seed=21)
    loss = ArcFaceLoss(s=64.0, m=0.5)
    replicated = ref._replicated(loss, steps)
    two_devices = PartialFC(ref.C, ref.D, sample_rate=0.5, ctx=ref._ctx(2))
    two_devices.set_full_weight(ref._centres())
    for r, res in enumerate(ranks):
        assert tuple(res["pfc1.0_range"]) == shard_range(ref.C, 2, r)
    for step, (x, y) in enumerate(steps):
        sampled = ref._sharded_step(two_devices, loss, x, y)
        for rate, (want_loss, want_grad, want_w) in (
                (1.0, replicated[step]), (0.5, (sampled[0], sampled[1],
                                                two_devices.full_weight()))):
            got = np.concatenate([res[f"pfc{rate}_{step}"] for res in ranks])
            weight = np.concatenate([res[f"pfc{rate}_{step}_w"] for res in ranks])
            what = f"rate {rate}, step {step}"
            np.testing.assert_allclose(got[:, 0], want_loss, rtol=1e-5, atol=1e-5, err_msg=what)
            np.testing.assert_allclose(got[:, 1:], want_grad, rtol=0,
                                       atol=1e-5 * np.abs(want_grad).max(), err_msg=what)
            np.testing.assert_allclose(weight, want_w, rtol=0, atol=1e-5 * np.abs(want_w).max(),
                                       err_msg=what)
    # sampling really happened at 0.5: some centres were left as they started
    start = ref._centres()
    final = np.concatenate([res[f"pfc0.5_{PFC_STEPS - 1}_w"] for res in ranks])
    assert 0 < (final == start).all(axis=1).sum() < ref.C
