"""Inference images/s: MobileFaceNet (ours on three paths vs gluon-face 1.0.2) and iresnet50.

Issue 3's target: >= 1.5x gluon-face's images/s at batch 32. Our MobileFaceNet has
insightface's per-channel PReLU, which oneDNN has no fused kernel for (gluon-face shares one
slope per layer), so three execution paths are measured against the same baseline runs:
MXNet static graph, MXNet ``optimize_for`` (oneDNN fusion) and ONNX Runtime on the exported
graph (what ``FaceEmbedder(backend='onnx')`` runs). The target is marked per path. The
"before" rows run the static graph with the textbook PReLU op (``gluonfr.nn.native_prelu``):
the library before ``gluonfr.nn.PReLU``, in the same run.
"""
import sys

from bench.common import Figure, median, median_ratio, print_table, rounds

BATCHES = (1, 32, 128)
PATHS = {"static": "MXNet static", "optimize_for": "MXNet optimize_for(MKLDNN)",
         "onnx": "ONNX Runtime (exported)"}
#: the static graph with MXNet's own per-channel PReLU op (what the library ran before)
BEFORE = "static_native_prelu"
LABELS = dict(PATHS, **{BEFORE: "MXNet static, LeakyReLU('prelu') op (before)"})
TARGET_BATCH = 32
TARGET = 1.5


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
        for mode, label in LABELS.items():
            ours = [r["images_per_s"][key] for r in runs[mode]]
            ratio = median_ratio(ours, base)
            target = met = None
            if b == TARGET_BATCH and mode != BEFORE:
                target, met = f">= {TARGET}x gluon-face", ratio is not None and ratio >= TARGET
            figures.append(Figure(
                "inference", f"mobilefacenet b{b} {label}", median(ours), median(base),
                unit="img/s", ratio=ratio, target=target or "", met=met,
                ours_runs=ours, baseline_runs=base))

    # iresnet50 has no gluon-face equivalent (its L-SE-ResNets are a different network)
    big = (1,) if quick else BATCHES
    res = rounds({"iresnet50": ("ours", "inference",
                                ["--model", "iresnet50", "--batches", ",".join(map(str, big)),
                                 "--seconds", "0.5" if quick else "2", "--warmup", "1",
                                 "--min-iters", "2"])}, 1, progress="inference")["iresnet50"]
    for b in big:
        figures.append(Figure("inference", f"iresnet50 b{b} MXNet static",
                              res[0]["images_per_s"][str(b)], None, unit="img/s",
                              note="no gluon-face equivalent"))
    met_paths = [f["name"] for f in figures if f["met"]]
    print_table("inference (images/s, higher is better)", figures)
    print(f"target >= {TARGET}x at batch {TARGET_BATCH} met on: {met_paths or 'no path'}",
          file=sys.stderr)
    return figures
