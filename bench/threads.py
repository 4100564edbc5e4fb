"""Thread settings, measured: which OMP / MXNet worker / engine settings to recommend.

Ours only. Each setting runs MobileFaceNet inference (static graph, batch 32) and a training
step (MobileFaceNet + ArcFace, 10,000 classes, batch 32) in fresh processes; the ratio is
against the suite's default (``OMP_NUM_THREADS`` = cores, ``MXNET_CPU_WORKER_NTHREADS=1``,
threaded engine), so > 1 means that setting is faster.
"""
import os

from bench.common import Figure, median, median_ratio, print_table, rounds

CORES = os.cpu_count() or 1


def settings(quick=False):
    """Name -> environment overrides; the first one is the suite's default."""
    if quick:
        return {f"OMP={CORES} WORKERS=1 threaded": {"OMP_NUM_THREADS": str(CORES)},
                "OMP=1 WORKERS=1 threaded": {"OMP_NUM_THREADS": "1"}}
    out = {}
    for omp in sorted({CORES, 1}, reverse=True):
        for workers in (1, 2):
            out[f"OMP={omp} WORKERS={workers} threaded"] = {
                "OMP_NUM_THREADS": str(omp), "MXNET_CPU_WORKER_NTHREADS": str(workers),
                "MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice"}
    out[f"OMP={CORES} NaiveEngine"] = {"OMP_NUM_THREADS": str(CORES),
                                       "MXNET_CPU_WORKER_NTHREADS": "1",
                                       "MXNET_ENGINE_TYPE": "NaiveEngine"}
    return out


def run(quick=False):
    repeats = 1
    infer = ["--batches", "32", "--seconds", "0.5" if quick else "2"]
    step = ["--classes", 10000, "--batch", 16 if quick else 32, "--warmup", 1,
            "--iters", 1 if quick else 2]
    variants = {}
    for name, env in settings(quick).items():
        variants["infer " + name] = ("ours", "inference", infer, env)
        variants["train " + name] = ("ours", "train_step", step, env)
    runs = rounds(variants, repeats, progress="threads")
    names = list(settings(quick))
    figures = []
    for kind, key, unit in (("infer", "images_per_s", "img/s"),
                            ("train", "samples_per_s", "samples/s")):
        def values(name, kind=kind, key=key):
            rs = runs[f"{kind} {name}"]
            return [r[key]["32"] if kind == "infer" else r[key] for r in rs]

        default = values(names[0])
        for name in names:
            v = values(name)
            what = "inference b32" if kind == "infer" else "train step 10k classes"
            figures.append(Figure("threads", f"{what}: {name}", median(v), median(default),
                                  unit=unit, ratio=median_ratio(v, default),
                                  note="baseline column: the default setting (first row)",
                                  env=settings(quick)[name], runs=v))
    print_table("thread settings (ours; ratio vs the default setting)", figures)
    return figures
