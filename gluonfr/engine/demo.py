"""``make demo``: train MobileFaceNet + ArcFace on procedural faces on the CPU, in minutes.

1. Generate the procedural face set (:mod:`gluonfr.data.synthetic`) unless it is there:
   training identities in ``train.rec`` and a verification ``synth_val.bin`` built only from
   identities that never appear in training.
2. Evaluate the freshly initialised network on the held-out pairs (with and without flip).
3. Train it with the same engine as ``scripts/train.py`` (NormFace warm-up, then ArcFace).
4. Evaluate again, and write the ROC of both networks and the run's TensorBoard logs.
"""
import json
import os
import shutil
import time

from ..data import synthetic
from ..metrics import evaluate_targets, load_targets, plot_roc
from ..utils.fileio import atomic_open
from .config import TrainConfig
from .loop import TrainLoop

__all__ = ["DEMO_DATA", "DEMO_TRAIN", "ensure_demo_data", "run_demo"]

#: The procedural face set of the demo (see :func:`gluonfr.data.synthetic.make_dataset`).
DEMO_DATA = dict(num_identities=100, images_per_identity=20, num_pairs=300, seed=0,
                 image_size=64)

#: The training run of the demo: ~5 min of MobileFaceNet on two CPU cores (6.4 epochs; the
#: first 150 iterations train with the margin-free NormFace loss, as the MobileFaceNet recipe).
DEMO_TRAIN = dict(model="mobilefacenet", input_size=64, loss="arcface", margin_s=32.0,
                  margin_m=0.5, loss_warmup_iters=150, batch_size=32, max_iters=400, lr=0.1,
                  lr_mode="cosine", warmup_iters=5, wd=5e-4, momentum=0.9, optimizer="sgd",
                  num_workers=1, log_interval=10)

_STAMP = "demo-data.json"


def ensure_demo_data(data_dir, num_workers=None, **overrides):
    """Generate the demo's face set into ``data_dir`` unless the same one is already there.

    Returns ``(info, generated)``: the dataset description and whether it was (re)built.
    """
    params = dict(DEMO_DATA, **overrides)
    stamp = os.path.join(data_dir, _STAMP)
    if os.path.isfile(stamp):
        with open(stamp, encoding="utf-8") as f:
            info = json.load(f)
        if info.get("params") == params and all(
                os.path.isfile(os.path.join(data_dir, n))
                for n in ("train.rec", "train.idx", "property", "synth_val.bin")):
            return info, False
    os.makedirs(data_dir, exist_ok=True)
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    made = synthetic.make_dataset(data_dir, num_workers=num_workers, **params)
    info = {"params": params, "num_images": made["num_images"],
            "num_val_identities": made["num_val_identities"]}
    # written last: an interrupted generation is redone next time
    with atomic_open(stamp, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return info, True


def _accuracies(result):
    return {"flip": float(result["accuracy"]), "flip_std": float(result["accuracy_std"]),
            "noflip": float(result["noflip"]["accuracy"]),
            "noflip_std": float(result["noflip"]["accuracy_std"])}


def run_demo(data_dir="data/synthetic", out_dir="runs/demo",
             ctx="cpu:0", progress=True, print_fn=print, data=None, **train_overrides):
    """Run the demo end to end and print the comparison.

    Parameters
    ----------
    data_dir : str
        Where the procedural face set lives (generated when missing).
    out_dir : str
        Receives ``train/`` (checkpoints, ``log.txt``, ``tensorboard/``), ``roc.png`` and
        ``results.json``.
    ctx : str
        Devices, as ``--ctx``.
    progress : bool
        tqdm bars.
    print_fn : callable
        Where the report lines go.
    data : dict, optional
        Overrides of :data:`DEMO_DATA` (identities, images, pairs, seed).
    **train_overrides
        Overrides of :data:`DEMO_TRAIN` (any :class:`TrainConfig` field).

    Returns
    -------
    dict
        ``untrained`` and ``trained`` accuracies (flip / no flip), ``seconds`` per stage,
        ``roc``, ``tensorboard``, ``log`` paths.
    """
    t_start = time.time()
    times = {}
    info, generated = ensure_demo_data(data_dir, **(data or {}))
    times["data"] = time.time() - t_start
    print_fn(f"{'generated' if generated else 'using'} {info['num_images']} training faces of "
             f"{info['params']['num_identities']} identities in {data_dir} "
             f"({times['data']:.0f} s)")

    train_dir = os.path.join(out_dir, "train")
    if os.path.isdir(train_dir):
        shutil.rmtree(train_dir)  # the previous demo run: start from scratch, not resume
    settings = dict(DEMO_TRAIN, **train_overrides)
    cfg = TrainConfig(data_dir=data_dir, save_dir=train_dir, ctx=ctx, val_interval=0,
                      save_interval=settings["max_iters"], progress=progress, **settings)
    targets, _ = load_targets(data_dir, ["synth_val"], image_size=(cfg.input_size,) * 2)
    pairs = len(targets["synth_val"][1])

    t = time.time()
    loop = TrainLoop(cfg)
    untrained = evaluate_targets(loop.backbone, targets, ctx=loop.ctx, batch_size=64,
                                 progress=progress)["synth_val"]
    times["eval_untrained"] = time.time() - t

    t = time.time()
    summary = loop.run()
    times["train"] = time.time() - t

    t = time.time()
    trained = evaluate_targets(loop.backbone, targets, ctx=loop.ctx, batch_size=64,
                               progress=progress)["synth_val"]
    times["eval_trained"] = time.time() - t

    os.makedirs(out_dir, exist_ok=True)
    roc = plot_roc({"untrained": untrained, "trained": trained},
                   os.path.join(out_dir, "roc.png"),
                   title=f"MobileFaceNet + ArcFace, {pairs} held-out pairs")
    times["total"] = time.time() - t_start
    result = {
        "untrained": _accuracies(untrained), "trained": _accuracies(trained),
        "pairs": pairs, "iterations": summary["iterations"],
        "samples_per_sec": summary["samples_per_sec"], "seconds": times, "roc": roc,
        "tensorboard": cfg.tensorboard_dir, "log": os.path.join(train_dir, "log.txt"),
        "checkpoint": summary["checkpoint"], "config": cfg.to_dict(), "data": info,
    }
    with atomic_open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)

    u, r = result["untrained"], result["trained"]
    print_fn("")
    print_fn(f"Verification on {pairs} pairs of identities never seen in training "
             "(synth_val.bin, 10-fold accuracy):")
    print_fn(f"  {'':34s}{'no flip':>18s}{'flip':>18s}")
    print_fn(f"  {'MobileFaceNet, untrained':34s}{u['noflip']:>11.4f} +-{u['noflip_std']:.3f}"
             f"{u['flip']:>11.4f} +-{u['flip_std']:.3f}")
    label = f"after {summary['iterations']} iterations ({times['train'] / 60:.1f} min)"
    print_fn(f"  {label:34s}{r['noflip']:>11.4f} +-{r['noflip_std']:.3f}"
             f"{r['flip']:>11.4f} +-{r['flip_std']:.3f}")
    print_fn("")
    print_fn(f"ROC plot:     {roc}")
    print_fn(f"TensorBoard:  tensorboard --logdir {cfg.tensorboard_dir}")
    print_fn(f"training log: {result['log']}")
    print_fn(f"total time:   {times['total'] / 60:.1f} min "
             f"(data {times['data']:.0f} s, training {times['train']:.0f} s at "
             f"{summary['samples_per_sec']:.1f} samples/s, evaluation "
             f"{times['eval_untrained'] + times['eval_trained']:.0f} s)")
    return result
