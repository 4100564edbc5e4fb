"""Partial FC against the replicated head: fwd + bwd + update time and peak memory.

At 360,232 (Glint360K) and 2,059,906 (WebFace42M) classes x 512-d, batch 128, on this
machine: the replicated head the engine builds today (NormDense + ArcFace + the engine's SGD
through a Trainer) and ``gluonfr.nn.PartialFC`` at sample rates 1.0, 0.3 and 0.1 (one shard,
the same ArcFace loss and SGD settings, updating the sampled rows only), each in its own
process, interleaved round by round. Peak memory is the worker's ru_maxrss (the whole process:
MXNet, the centres, their momentum and gradients, the logits). Every worker runs under a
data-segment limit (``MEM_LIMIT_GIB``, 22 GiB): a head that does not fit fails with an allocation
error and its row says so; the bench goes on.

Targets (issue 22): rate 0.1 at least 5x faster than the replicated head at 360,232 classes;
2,059,906 classes trainable in 24 GiB.
"""
import os
import statistics
import sys

from bench.common import Figure, WorkerError, median, print_table, run_worker

CLASSES = (360232, 2059906)
EMB, BATCH = 512, 128
RATES = (1.0, 0.3, 0.1)
#: the data limit of every worker (``GLUONFR_BENCH_PFC_MEM_GIB``): the machine has 24 GiB,
#: the rest is the system's
MEM_LIMIT_GIB = float(os.environ.get("GLUONFR_BENCH_PFC_MEM_GIB", "22"))
TARGET_SPEEDUP, TARGET_GIB = 5.0, 24.0


def _variants(classes, emb, batch, seconds):
    base = ["--classes", classes, "--emb", emb, "--batch", batch, "--seconds", seconds,
            "--mem-limit-gib", MEM_LIMIT_GIB]
    out = {"replicated": base + ["--head", "replicated"]}
    for rate in RATES:
        out[f"pfc {rate:g}"] = base + ["--head", "pfc", "--sample-rate", rate]
    return out


def _measure(variants, repeats, label):
    """``{name: [result or None per round]}`` and ``{name: error text}``; rounds interleave."""
    runs = {name: [] for name in variants}
    errors = {}
    for r in range(repeats):
        for name, args in variants.items():
            if name in errors:  # it did not fit (or broke) once: it will not next round
                runs[name].append(None)
                continue
            print(f"  [partial_fc {label} round {r + 1}/{repeats}] {name}", file=sys.stderr)
            try:
                runs[name].append(run_worker("ours", "partial_fc", *args))
            except WorkerError as err:
                lines = [ln for ln in str(err).splitlines() if ln.strip()]
                errors[name] = lines[-1] if lines else str(err)
                runs[name].append(None)
    return runs, errors


def run(quick=False):
    sizes = ((3000, 32, 16), (12000, 32, 16)) if quick else tuple((c, EMB, BATCH)
                                                                  for c in CLASSES)
    seconds = "0.3" if quick else "3"
    figures = []
    for classes, emb, batch in sizes:
        label = f"{classes:,} x {emb}-d b{batch}"
        repeats = 1 if quick or classes > 1_000_000 else 2
        runs, errors = _measure(_variants(classes, emb, batch, seconds), repeats, label)
        rep = runs["replicated"]
        rep_ms = [r["ms"] if r else None for r in rep]
        for name, results in runs.items():
            ms = [r["ms"] if r else None for r in results]
            mem = [r["peak_rss_mib"] if r else None for r in results]
            if name in errors:
                fits = "allocate" not in errors[name].lower()
                figures.append(Figure(
                    "partial_fc", f"{name} head fwd+bwd+update {label}", None, None,
                    unit="ms", note=(f"failed: {errors[name][:160]}" if fits else
                                     f"does not fit: out of memory within the "
                                     f"{MEM_LIMIT_GIB:g} GiB data limit"),
                    error=errors[name]))
                continue
            ratios = [b / o for o, b in zip(ms, rep_ms) if o and b]
            ratio = statistics.median(ratios) if ratios and name != "replicated" else None
            target, met = "", None
            if name == "pfc 0.1" and classes == CLASSES[0]:
                target = f">= {TARGET_SPEEDUP:g}x replicated"
                met = None if ratio is None else ratio >= TARGET_SPEEDUP
            sampled = results[0]["sampled_classes"]
            note = (f"{sampled:,} classes per step; ratio = replicated / this, same rounds"
                    if name != "replicated" else "NormDense + ArcFace + Trainer SGD")
            if name != "replicated" and "replicated" in errors:
                note += "; the replicated head did not fit"
            figures.append(Figure(
                "partial_fc", f"{name} head fwd+bwd+update {label}", median(ms),
                median(rep_ms) if name != "replicated" else None, unit="ms", ratio=ratio,
                target=target, met=met, note=note, runs=ms, replicated_runs=rep_ms))
            peak = median(mem)
            target, met = "", None
            if classes == CLASSES[-1] and name != "replicated":
                target = f"<= {TARGET_GIB:g} GiB"
                met = peak <= TARGET_GIB * 1024
            figures.append(Figure(
                "partial_fc", f"{name} head peak RSS {label}", peak, None, unit="MiB",
                target=target, met=met, note="whole worker process", runs=mem))
    print_table("Partial FC vs the replicated head (ms, MiB; ratio > 1 = faster)", figures)
    return figures
