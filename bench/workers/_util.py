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
