"""Helpers shared by the measurement subprocesses of both sides (no gluonfr import here).

The workers run in isolated mode (``python -I``), so each one puts this folder on
``sys.path`` itself; the baseline's workers import it too, which is safe because this folder
holds no ``gluonfr`` package.
"""
import json
import os
import resource
import statistics
import time


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, warmup=2, seconds=2.0, min_iters=3, max_iters=10 ** 6):
    """Per-call seconds of ``fn`` after ``warmup`` calls; ``fn`` must block until done.

    Runs for at least ``seconds`` and ``min_iters`` calls (and at most ``max_iters``).
    """
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters
                                      or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def summarise(times):
    """Median and spread of per-call times."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "calls": len(times)}


def emit(result):
    """Print the result as the JSON line bench.common.run_worker reads (always last)."""
    result = dict(result)
    result.setdefault("peak_rss_mib", peak_rss_mib())
    result.setdefault("pid", os.getpid())
    print(json.dumps(result), flush=True)


def record_rate(out, batch, times):
    """Store images/s and the timing summary of batch size ``batch`` into ``out``."""
    stats = summarise(times)
    out["images_per_s"][str(batch)] = batch / stats["median_s"]
    out["timing"][str(batch)] = stats


def add_step_args(parser, batch, seconds=None, iters=None):
    """The arguments both sides' head / training-step workers take, with the same defaults."""
    parser.add_argument("--classes", type=int, default=85742)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--warmup", type=int, default=2)
    if seconds is not None:
        parser.add_argument("--seconds", type=float, default=seconds)
    if iters is not None:
        parser.add_argument("--iters", type=int, default=iters)
    return parser


def random_head_inputs(classes, batch, emb_dim):
    """The same (embeddings with a gradient buffer, labels) for both sides' head workers."""
    import mxnet as mx
    import numpy as np

    rng = np.random.default_rng(0)
    emb = mx.nd.array(rng.normal(size=(batch, emb_dim)))
    emb.attach_grad()
    return emb, mx.nd.array(rng.integers(0, classes, batch))
