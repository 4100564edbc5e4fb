"""What each loss learns in a fixed CPU budget: held-out verification accuracy.

Ours only (no baseline column): ``gluonfr.engine.train`` with the demo's data and settings
(``gluonfr.engine.demo``: procedural faces, MobileFaceNet at 64 px, cosine schedule, s = 32)
and the loss swapped. The accuracy (flip, 10 folds) is on ``synth_val.bin``, pairs of
identities the network never saw.

Two tables:

* the demo recipe (``LOSSES``: NormFace warm-up before the margin losses) at the demo's
  budget; ``GLUONFR_BENCH_LEARNING_ITERS`` changes it;
* every classification head of the registry (``HEADS``) alone from the first iteration, with
  the same (smaller) budget ``GLUONFR_BENCH_HEADS_ITERS`` (default :data:`HEADS_ITERS`) at
  :data:`HEADS_INPUT` px (``GLUONFR_BENCH_HEADS_INPUT``) and
  ``GLUONFR_BENCH_HEADS_SEEDS`` seeds (default 0,1,2): mean and std over the seeds.
  ``GLUONFR_BENCH_HEADS`` (comma list) runs some heads only.

and a third, cheap enough to run anywhere: every head on synthetic identity features
(``bench/workers/head_features.py``: Gaussian identity clusters, a two-layer MLP, the
engine's heads, :data:`FEATURE_STEPS` SGD steps, seeds 0-2), verification accuracy on
held-out identities and the angular gap, mean and std over the seeds.

``GLUONFR_BENCH_LEARNING_TABLES`` (comma list of ``demo``, ``features``, ``heads``; default
all three) runs some tables only. A run of some tables or some heads is partial
(:func:`partial`): ``python -m bench learning`` then replaces only the rows it measured and
keeps the others (each row's ``key`` names its table and loss, not its budget).

``--quick`` trains a few iterations of one seed.
"""
import json
import os
import statistics
import sys

from bench.common import WORK_DIR, Figure, print_table, run_worker

ROOT = os.path.join(WORK_DIR, "learning")
#: finished per-head trainings, by worker arguments (see :func:`_cached_run`)
HEADS_CACHE = os.path.join(WORK_DIR, "learning-heads")
LOSSES = ("arcface", "cosface", "l2softmax", "softmax")
HEADS = ("softmax", "normface", "l2softmax", "arcface", "cosface", "combined", "sphereface",
         "mv_softmax", "curricularface", "adacos", "adaface", "magface", "circle",
         "subcenter_arcface", "lgm")
#: iterations of batch 32 per head and seed, and the input side, of the per-head table: what
#: 15 heads x 3 seeds allow in about an hour on two shared cores, and enough for NormFace to
#: leave chance on the held-out pairs (60 iterations did not; see docs/heads.rst)
HEADS_ITERS = 200
HEADS_INPUT = 32
TABLES = ("demo", "features", "heads", "partial_fc")
#: sample rates of the partial_fc table (1.0: the replicated head the engine uses by default)
PFC_RATES = (1.0, 0.5, 0.1)
#: the per-head table's reference row: the network as initialised, verified without training
#: (an untrained MobileFaceNet is well above 0.5 on these pairs, so 0.5 is not "chance" here)
UNTRAINED = "untrained"
#: SGD steps of batch 64 per head and seed on the synthetic features
FEATURE_STEPS = 150


def _env_list(name, default):
    text = os.environ.get(name, "")
    return [s.strip() for s in text.split(",") if s.strip()] or list(default)


def _tables():
    tables = _env_list("GLUONFR_BENCH_LEARNING_TABLES", TABLES)
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"GLUONFR_BENCH_LEARNING_TABLES: unknown table(s) {unknown}; known: "
                         f"{', '.join(TABLES)}")
    return tables


def partial():
    """Whether this run measures only some of the rows (some tables, or some heads)."""
    everything = (UNTRAINED,) + HEADS
    return (set(_tables()) != set(TABLES)
            or set(_env_list("GLUONFR_BENCH_HEADS", everything)) != set(everything))


def run(quick=False):
    tables = _tables()
    figures = []
    if "demo" in tables:
        figures += run_demo(quick)
    if "features" in tables:
        figures += run_features(quick)
    if "heads" in tables and (not quick or os.environ.get("GLUONFR_BENCH_HEADS")):
        figures += run_heads(quick)
    if "partial_fc" in tables:
        figures += run_partial_fc(quick)
    print_table("learning in a fixed budget (held-out verification accuracy)", figures)
    return figures


def run_demo(quick=False):
    """The demo recipe (NormFace warm-up, then the loss) at the demo's budget, per loss."""
    budget = ["--iters", 4, "--batch", 16] if quick else []
    if not quick and os.environ.get("GLUONFR_BENCH_LEARNING_ITERS"):
        budget = ["--iters", int(os.environ["GLUONFR_BENCH_LEARNING_ITERS"])]
    run_worker("ours", "learning", "--root", ROOT, "--prepare-only")
    figures = []
    for loss in LOSSES if not quick else LOSSES[:1]:
        r = run_worker("ours", "learning", "--root", ROOT, "--loss", loss, *budget)
        figures.append(Figure(
            "learning", f"held-out accuracy, {r['iters']} iterations of {r['batch']}: {loss}",
            r["accuracy"], None,
            note=f"{r['seconds']:.0f} s incl. verification; final train accuracy "
                 f"{r['train_accuracy'] or 0:.3f}, loss {r['train_loss'] or 0:.3f}",
            seconds=r["seconds"], samples_per_s=r["samples_per_s"], settings=r["settings"],
            key=f"demo {loss}"))
    return figures


def run_heads(quick=False):
    """One row per classification head: mean and std over the seeds at the same budget.

    The ``untrained`` row (in the default selection, first) verifies the network each seed
    initialises, without training: what the heads are compared with.
    """
    iters = 4 if quick else int(os.environ.get("GLUONFR_BENCH_HEADS_ITERS", HEADS_ITERS))
    seeds = [0] if quick else [int(s) for s in _env_list("GLUONFR_BENCH_HEADS_SEEDS", "012")]
    heads = _env_list("GLUONFR_BENCH_HEADS", HEADS[:3] if quick else (UNTRAINED,) + HEADS)
    unknown = sorted(set(heads) - set(HEADS) - {UNTRAINED})
    if unknown:
        raise ValueError(f"GLUONFR_BENCH_HEADS: unknown head(s) {unknown}; known: "
                         f"{', '.join((UNTRAINED,) + HEADS)}")
    batch = ["--batch", 16] if quick else []
    size = int(os.environ.get("GLUONFR_BENCH_HEADS_INPUT", HEADS_INPUT))
    figures = []
    for head in heads:
        what = (["--untrained"] if head == UNTRAINED else ["--loss", head, "--iters", iters])
        runs = [_cached_run("--root", ROOT, *what, "--seed", seed, "--input-size", size,
                            "--no-loss-warmup", *batch) for seed in seeds]
        acc = [r["accuracy"] for r in runs]
        mean = statistics.mean(acc)
        std = statistics.pstdev(acc) if len(acc) > 1 else 0.0
        budget = ("the initialised network, no training" if head == UNTRAINED else
                  f"{iters} iterations of {runs[0]['batch']}")
        figures.append(Figure(
            "learning", f"head {head}: held-out accuracy, {budget} at {size} px, mean of "
            f"{len(seeds)} seeds", mean, None,
            note=f"std {std:.4f} over seeds {','.join(map(str, seeds))}; "
                 f"{statistics.mean(r['seconds'] for r in runs):.0f} s per run"
                 + ("" if head == UNTRAINED else "; train accuracy "
                    f"{statistics.mean(r['train_accuracy'] or 0 for r in runs):.3f}"),
            head=head, std=std, runs=acc, seeds=seeds, iters=0 if head == UNTRAINED else iters,
            seconds=[r["seconds"] for r in runs], settings=runs[0]["settings"],
            key=f"head {head}"))
    return figures


def _cached_run(*args):
    """One per-head training (a worker run), kept in ``HEADS_CACHE`` by its arguments.

    45 trainings take hours on a loaded machine: a run that was interrupted, or a row
    measured in parts (some seeds, then the others), reuses the trainings already done.
    Delete the folder to measure again (e.g. after changing the engine).
    """
    name = "_".join(str(a).lstrip("-").replace("/", "") for a in args[2:]) + ".json"
    path = os.path.join(HEADS_CACHE, name)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    result = run_worker("ours", "learning", *args)
    from gluonfr.utils.fileio import atomic_open

    os.makedirs(HEADS_CACHE, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    print(f"  [heads] {' '.join(map(str, args[2:]))}: accuracy {result['accuracy']:.4f} in "
          f"{result['seconds']:.0f} s", file=sys.stderr)
    return result


def run_features(quick=False):
    """Every head on the synthetic features: accuracy and angular gap, mean/std over seeds."""
    heads = HEADS[:3] if quick else HEADS
    seeds = "0" if quick else "0,1,2"
    steps = 10 if quick else FEATURE_STEPS
    r = run_worker("ours", "head_features", "--losses", ",".join(heads), "--seeds", seeds,
                   "--steps", steps)
    figures = []
    for head in heads:
        runs = [x for x in r["runs"] if x["loss"] == head]
        diverged = sum(not x["finite"] for x in runs)
        runs_ok = [x for x in runs if x["finite"]] or [{"accuracy": 0.0, "gap": 0.0}]
        acc, gap = [x["accuracy"] for x in runs_ok], [x["gap"] for x in runs_ok]
        figures.append(Figure(
            "learning", f"features: head {head}, held-out verification accuracy, {steps} "
            f"steps of {r['batch']}, mean of {len(runs)} seeds", statistics.mean(acc), None,
            note=f"std {statistics.pstdev(acc):.4f}; angular gap {statistics.mean(gap):.3f} "
                 f"+- {statistics.pstdev(gap):.3f} rad; s = {r['s']:g} for scaled heads"
                 + (f"; {diverged} of {len(runs)} runs diverged (not in the mean)"
                    if diverged else ""),
            head=head, std=statistics.pstdev(acc), gap=statistics.mean(gap),
            gap_std=statistics.pstdev(gap), runs=runs, settings={k: r[k] for k in
                                                              ("steps", "batch", "lr", "s",
                                                               "data")},
            key=f"features {head}"))
    return figures


def run_partial_fc(quick=False):
    """ArcFace with its centres as a sampled PartialFC against the replicated head.

    The per-head table's budget, input side and seeds (``GLUONFR_BENCH_HEADS_ITERS``,
    ``_INPUT``, ``_SEEDS``), ArcFace alone from the first step; ``GLUONFR_BENCH_PFC_RATES`` (a
    comma list) runs some rates only. The demo set has 100
    training identities: a batch of 32 holds about 27 of them, and the positives are always
    kept, so rate 0.1 (10 classes) trains on the batch's own classes only, and 0.5 adds
    about 23 uniform negatives; each row says how many classes a step used on average.
    """
    iters = 4 if quick else int(os.environ.get("GLUONFR_BENCH_HEADS_ITERS", HEADS_ITERS))
    seeds = [0] if quick else [int(s) for s in _env_list("GLUONFR_BENCH_HEADS_SEEDS", "012")]
    batch = ["--batch", 16] if quick else []
    size = int(os.environ.get("GLUONFR_BENCH_HEADS_INPUT", HEADS_INPUT))
    # GLUONFR_BENCH_PFC_RATES: some rates only (1 is always run: the reference)
    rates = sorted({1.0} | {float(r) for r in _env_list("GLUONFR_BENCH_PFC_RATES", PFC_RATES)},
                   reverse=True)
    results = {}
    for rate in rates:
        rate_arg = [] if rate == 1.0 else ["--sample-rate", rate]
        results[rate] = [run_worker("ours", "learning", "--root", ROOT, "--loss", "arcface",
                                    "--iters", iters, "--seed", seed, "--input-size", size,
                                    "--no-loss-warmup", *batch, *rate_arg) for seed in seeds]
    ref = [r["accuracy"] for r in results[1.0]]
    ref_mean = statistics.mean(ref)
    # the bar: the 10-fold std of the held-out accuracy (the protocol's own spread)
    fold = [r["fold_std"] for r in results[1.0] if r.get("fold_std") is not None]
    ref_fold_std = statistics.mean(fold) if fold else None
    figures = []
    for rate, runs in results.items():
        acc = [r["accuracy"] for r in runs]
        mean = statistics.mean(acc)
        std = statistics.pstdev(acc) if len(acc) > 1 else 0.0
        sampled = [r["sampled_classes_mean"] for r in runs if r.get("sampled_classes_mean")]
        classes = runs[0].get("num_classes")
        if rate == 1.0:
            name, note, target, met, base = (
                "replicated head", f"all {classes} classes per step; std {std:.4f} over seeds"
                + (f", 10-fold std {ref_fold_std:.4f}" if ref_fold_std is not None else ""),
                "", None, None)
        else:
            name = f"PartialFC {rate:g}"
            note = (f"{statistics.mean(sampled):.1f} of {classes} classes per step on average; "
                    f"std {std:.4f} over seeds; difference {mean - ref_mean:+.4f}")
            target = "within the 10-fold std of rate 1"
            met = (abs(mean - ref_mean) <= ref_fold_std if ref_fold_std is not None
                   else None)
            base = ref_mean
        figures.append(Figure(
            "learning", f"ArcFace, {name}: held-out accuracy, {iters} iterations of "
            f"{runs[0]['batch']} at {size} px, mean of {len(seeds)} seeds", mean, base,
            target=target, met=met, note=note, runs=acc, seeds=seeds, std=std,
            sampled_classes=sampled, key=f"partial_fc {rate:g}"))
    return figures
