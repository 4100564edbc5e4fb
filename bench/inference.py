"""Inference images/s: MobileFaceNet (ours on four paths vs gluon-face 1.0.2) and iresnet50.

Issue 3's target: >= 1.5x gluon-face's images/s at batch 32. Our MobileFaceNet has
insightface's per-channel PReLU, which oneDNN has no fused kernel for (gluon-face shares one
slope per layer), so the execution paths are measured against the same baseline runs: MXNet
static graph, the oneDNN-fused graph (``gluonfr.utils.fuse``, the default on the CPU), int8
(``gluonfr.utils.quantize_int8``) and ONNX Runtime on the exported graph (what
``FaceEmbedder(backend='onnx')`` runs). The "before" rows run the static graph with the
textbook PReLU op (``gluonfr.nn.native_prelu``): the library before ``gluonfr.nn.PReLU``.

Issue 18's targets: int8 MobileFaceNet at batch 32 >= 1.8x our float32 static graph and
>= 3x gluon-face; iresnet50 int8 >= 2x float32. Plus the end-to-end time of evaluating one
12,000-image ``.bin`` with flip (procedural faces, cached in bench/.work), float32 vs int8.
"""
import os
import sys

from bench.common import (
    WORK_DIR,
    Figure,
    median,
    median_ratio,
    print_table,
    rounds,
    run_worker,
)

BATCHES = (1, 32, 128)
PATHS = {"static": "MXNet static", "optimize_for": "MXNet fused (optimize_for MKLDNN)",
         "int8": "MXNet int8 (oneDNN)", "onnx": "ONNX Runtime (exported)"}
#: the static graph with MXNet's own per-channel PReLU op (what the library ran before)
BEFORE = "static_native_prelu"
LABELS = dict(PATHS, **{BEFORE: "MXNet static, LeakyReLU('prelu') op (before)"})
TARGET_BATCH = 32
TARGET = 1.5  # issue 3: every path vs gluon-face at batch 32
#: issue 18: int8 MobileFaceNet at batch 32 vs our float32 static and vs gluon-face,
#: iresnet50 int8 vs float32 static
INT8_VS_STATIC, INT8_VS_BASELINE, IRESNET_INT8 = 1.8, 3.0, 2.0
#: the end-to-end evaluation: a procedural 112x112 .bin of this many pairs (x2 images)
EVAL_PAIRS = 6000


def _eval_bin(pairs):
    from gluonfr.data import synthetic

    root = os.path.join(WORK_DIR, f"evalbin-{pairs}")
    path = os.path.join(root, "synth_val.bin")
    if not os.path.exists(path):  # written atomically by pack_bin: complete or absent
        synthetic.make_dataset(root, 1, 1, pairs, seed=0, image_size=112,
                               num_workers=os.cpu_count() or 1)
    return path


def run(quick=False):
    batches = (1, 32) if quick else BATCHES
    seconds = "0.5" if quick else "3"
    repeats = 1 if quick else 2
    common = ["--batches", ",".join(map(str, batches)), "--seconds", seconds]
    variants = {"baseline": ("baseline", "inference", common)}
    for mode in PATHS:
        variants[mode] = ("ours", "inference", ["--mode", mode] + common)
    variants[BEFORE] = ("ours", "inference", ["--mode", "static", "--native-prelu"] + common)
    runs = rounds(variants, repeats, progress="inference")

    figures = []
    for b in batches:
        key = str(b)
        base = [r["images_per_s"][key] for r in runs["baseline"]]
        static = [r["images_per_s"][key] for r in runs["static"]]
        for mode, label in LABELS.items():
            ours = [r["images_per_s"][key] for r in runs[mode]]
            ratio = median_ratio(ours, base)
            target = met = None
            if b == TARGET_BATCH and mode not in (BEFORE, "int8"):
                target, met = f">= {TARGET}x gluon-face", ratio is not None and ratio >= TARGET
            if b == TARGET_BATCH and mode == "int8":
                target = f">= {INT8_VS_BASELINE}x gluon-face"
                met = ratio is not None and ratio >= INT8_VS_BASELINE
            figures.append(Figure(
                "inference", f"mobilefacenet b{b} {label}", median(ours), median(base),
                unit="img/s", ratio=ratio, target=target or "", met=met,
                ours_runs=ours, baseline_runs=base))
        for mode in ("optimize_for", "int8"):
            ours = [r["images_per_s"][key] for r in runs[mode]]
            ratio = median_ratio(ours, static)
            target = met = None
            if b == TARGET_BATCH and mode == "int8":
                target = f">= {INT8_VS_STATIC}x our float32 static"
                met = ratio is not None and ratio >= INT8_VS_STATIC
            figures.append(Figure(
                "inference", f"mobilefacenet b{b} {LABELS[mode]} vs our static", median(ours),
                median(static), unit="img/s", ratio=ratio, target=target or "", met=met,
                note="baseline column: our float32 static graph", ours_runs=ours,
                baseline_runs=static))

    # iresnet50 has no gluon-face equivalent (its L-SE-ResNets are a different network)
    big = (1, 32) if quick else BATCHES
    res_args = ["--model", "iresnet50", "--batches", ",".join(map(str, big)),
                "--seconds", "0.5" if quick else "2", "--warmup", "1", "--min-iters", "2"]
    res = rounds({mode: ("ours", "inference", ["--mode", mode] + res_args)
                  for mode in ("static", "optimize_for", "int8")}, 1, progress="inference")
    for b in big:
        key = str(b)
        static = [r["images_per_s"][key] for r in res["static"]]
        figures.append(Figure("inference", f"iresnet50 b{b} MXNet static", median(static),
                              None, unit="img/s", note="no gluon-face equivalent"))
        for mode in ("optimize_for", "int8"):
            ours = [r["images_per_s"][key] for r in res[mode]]
            ratio = median_ratio(ours, static)
            target = met = None
            if mode == "int8" and b == TARGET_BATCH:
                target = f">= {IRESNET_INT8}x our float32 static"
                met = ratio is not None and ratio >= IRESNET_INT8
            figures.append(Figure(
                "inference", f"iresnet50 b{b} {LABELS[mode]} vs our static", median(ours),
                median(static), unit="img/s", ratio=ratio, target=target or "", met=met,
                note="baseline column: our float32 static graph", ours_runs=ours))

    # end to end: load + embed (flip) + 10-fold protocol of one .bin, per precision
    bin_path = _eval_bin(200 if quick else EVAL_PAIRS)
    evals = {p: run_worker("ours", "inference", "--mode", "evalbin", "--bin", bin_path,
                           "--precision", p, "--images", 64 if quick else 500)
             for p in ("static", "float32", "int8")}
    n = evals["static"]["images"]
    for p, label in (("float32", "float32 fused"), ("int8", "int8")):
        e = evals[p]
        figures.append(Figure(
            "inference", f"evaluate a {n:,}-image .bin (MobileFaceNet, flip): {label}",
            e["eval_s"], evals["static"]["eval_s"], unit="s",
            ratio=evals["static"]["eval_s"] / e["eval_s"],
            note="baseline column: float32 static graph; excludes decoding the .bin "
                 f"({e['load_s']:.1f} s)" + (f" and calibration ({e['calibration_s']:.1f} s "
                                            f"on {e['calibration_images']} of its crops)"
                                            if p == "int8" else ""),
            accuracy=e["accuracy"], static_accuracy=evals["static"]["accuracy"]))

    met_paths = [f["name"] for f in figures if f["met"]]
    print_table("inference (images/s, higher is better)", figures)
    print(f"targets met: {met_paths or 'none'}", file=sys.stderr)
    return figures
