"""IJB-C 1:1 at full size: template pooling + pair scoring, ours vs a straightforward version.

Random image features (469,375 x 512 float32), 23,124 templates of several media and
15,658,489 pairs: IJB-C's sizes. Ours is ``gluonfr.metrics.ijb.template_features`` +
``pair_scores``; the comparison is the algorithm as insightface's IJB script lays it out
(loop over templates, 100,000-pair batches), in ``bench/workers/ijb.py``. Each side runs in
its own process, interleaved; peak memory is the process's, inputs included (about 1.3 GiB
of them). Targets (issue 17): >= 3x faster, under 2 GiB. ``--quick`` shrinks the problem to
a smoke test of the script (not a measurement).
"""
from bench.common import Figure, median, median_ratio, print_table, rounds

import numpy as np

TARGET_SPEEDUP = 3.0
TARGET_MIB = 2048


def run(quick=False):
    size = (["--images", 20000, "--templates", 1000, "--pairs", 200000] if quick else [])
    repeats = 1 if quick else 2
    runs = rounds({"ours": ("ours", "ijb", ["--impl", "ours"] + size),
                   "straightforward": ("ours", "ijb", ["--impl", "straightforward"] + size)},
                  repeats, progress="ijb")
    ours, ref = runs["ours"], runs["straightforward"]
    agree = all(np.allclose(a["sample_scores"], b["sample_scores"], atol=1e-5)
                for a, b in zip(ours, ref))
    first = ours[0]
    tag = f"{first['images']:,} images, {first['templates']:,} templates, " \
          f"{first['pairs']:,} pairs, {first['dim']}-d"
    figures = []
    for key, what in (("total_s", "pooling + 1:1 scoring"), ("pool_s", "template pooling"),
                      ("score_s", "pair scoring")):
        a, b = [r[key] for r in ours], [r[key] for r in ref]
        ratio = median_ratio(a, b, higher_is_better=False)
        total = key == "total_s"
        figures.append(Figure(
            "ijb", f"{tag}: {what}", median(a), median(b), unit="s", ratio=ratio,
            target=f">= {TARGET_SPEEDUP:.0f}x" if total else "",
            met=(ratio is not None and ratio >= TARGET_SPEEDUP and agree) if total else None,
            note=f"baseline column: the straightforward version; scores agree: {agree}",
            ours_runs=a, baseline_runs=b))
    a, b = [r["peak_rss_mib"] for r in ours], [r["peak_rss_mib"] for r in ref]
    figures.append(Figure(
        "ijb", f"{tag}: peak memory (inputs included)", median(a), median(b), unit="MiB",
        ratio=median_ratio(a, b, higher_is_better=False), target=f"< {TARGET_MIB} MiB",
        met=median(a) < TARGET_MIB,
        note=f"inputs alone: {median([r['inputs_peak_rss_mib'] for r in ours]):.0f} MiB"))
    print_table("IJB-C pooling + 1:1 scoring (seconds / MiB, lower is better)", figures)
    return figures
