"""Generate the docs' tables from the code and from measured results (run by conf.py).

- ``_generated/model_zoo_table.rst``: one row per registered model — embedding size,
  parameters and multiply-adds counted by :func:`gluonfr.utils.summary`, parameter-file size,
  the store's sha1 — and the verification accuracies (flip) from ``docs/results/<model>.json``
  files written by ``scripts/eval.py --json``. A figure that was not measured is a dash
  (an em dash: a lone ``-`` in an RST table cell would be a bullet list). Two tables
  (identity and size; accuracy) so each fits the page width.
- ``_generated/model_cards_table.rst``: the insightface releases ``gluonfr-import``
  recognises, with the facts their cards carry (figures are the publishers').
- ``_generated/performance_table.rst``: bench/results.json (``python -m bench``).
- ``_generated/heads_table.rst``: every classification head on the synthetic features
  (``docs/results/heads_features.json``, written by ``bench/workers/head_features.py``) and,
  when ``python -m bench learning`` has run, on the procedural faces (bench/results.json).
"""
import json
import os

from bench.common import format_value
from gluonfr.utils.fileio import atomic_open

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
BENCH_RESULTS = os.path.join(os.path.dirname(HERE), "bench", "results.json")

#: verification targets shown in the model-zoo table, in the order of the published tables
ZOO_TARGETS = [("lfw", "LFW"), ("cfp_fp", "CFP-FP"), ("agedb_30", "AgeDB-30"),
               ("calfw", "CALFW"), ("cplfw", "CPLFW"), ("vgg2_fp", "VGG2-FP")]


def _list_table(header, rows, widths=None):
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append("   :widths: " + " ".join(str(w) for w in widths))
    lines.append("")
    for row in [header] + rows:
        lines.append("   * - " + str(row[0]))
        lines.extend("     - " + str(cell) for cell in row[1:])
    return "\n".join(lines) + "\n"


def _measured_accuracy(name):
    """Flip accuracies (percent) of ``name`` from docs/results/<name>.json, per target."""
    path = os.path.join(RESULTS_DIR, name + ".json")
    if not os.path.exists(path):
        return {}, None
    with open(path) as f:
        data = json.load(f)
    out = {}
    for target, entry in data.get("targets", {}).items():
        variant = entry.get("flip") or entry.get("noflip")
        if variant and variant.get("accuracy") is not None:
            out[target] = 100.0 * variant["accuracy"]
    return out, data.get("trained_on")


def model_zoo_rows():
    from gluonfr.model_zoo import get_model_list, model_store
    from gluonfr.model_zoo.registry import get_constructor
    from gluonfr.utils import summary

    rows = []
    for name in get_model_list():
        net = get_constructor(name)()
        info = summary(net, (1, 3, 112, 112), print_table=False)
        sha1 = model_store._model_sha1.get(name)
        accuracy, trained_on = _measured_accuracy(name)
        rows.append({
            "name": name,
            "embedding": info["output_shape"][-1],
            "params": info["params"],
            "macs": info["macs"],
            # float32 parameters and running statistics, as save_parameters writes them
            "file_mb": 4 * (info["params"] + info["aux"]) / 2 ** 20,
            "sha1": sha1[:8] if sha1 else None,
            "accuracy": accuracy,
            "trained_on": trained_on,
        })
    return rows


#: an unmeasured cell: a real dash (a lone "-" in an RST cell is a bullet list)
DASH = "\u2014"


def model_zoo_table():
    sizes, accuracy = [], []
    for r in model_zoo_rows():
        name = f"``{r['name']}``"
        sizes.append([name, r["embedding"], f"{r['params'] / 1e6:.2f}M",
                      f"{r['macs'] / 1e6:,.0f}M", f"{r['file_mb']:.1f}", r["sha1"] or DASH,
                      r["trained_on"] or DASH])
        accuracy.append([name] + [f"{r['accuracy'][t]:.2f}" if t in r["accuracy"] else DASH
                                  for t, _ in ZOO_TARGETS])
    return (_list_table(["model", "emb", "params", "MAdds", "file MiB", "store sha1",
                         "trained on"], sizes)
            + "\n**Accuracy** (percent, flip):\n\n"
            + _list_table(["model"] + [label for _, label in ZOO_TARGETS], accuracy))


def model_cards_table():
    """The insightface releases gluonfr-import recognises, with their published facts."""
    from gluonfr.model_zoo.cards import KNOWN_RELEASES

    rows = []
    for rel in KNOWN_RELEASES:
        acc = rel.get("published_accuracy") or {}
        rows.append([f"``{rel['release']}``", rel["architecture"],
                     rel.get("training_set", DASH), rel.get("head", DASH),
                     ("/ 127.5" if "127.5) / 127.5" in rel["input"] else "/ 128 (in graph)"),
                     "; ".join(f"{k} {v}" for k, v in acc.items()) or DASH])
    return _list_table(["release", "gluonfr architecture", "training set", "head",
                        "input (x - 127.5)", "published accuracy (theirs)"], rows,
                       widths=[16, 12, 14, 18, 10, 30])


def performance_table():
    if not os.path.exists(BENCH_RESULTS):
        return ("*No benchmark results yet: run* ``make bench`` *to produce*"
                " ``bench/results.json``.\n")
    with open(BENCH_RESULTS) as f:
        results = json.load(f)
    m = results["machine"]
    intro = (f"Measured {results['date']} on {m['cpu']}, {m['cores']} cores, "
             + ", ".join(f"``{k}={v}``" for k, v in m["threads"].items())
             + "; baseline " + m["baseline"] + ".\n\n")
    rows = []
    for fig in results["figures"]:
        met = "" if fig["met"] is None else ("yes" if fig["met"] else "**no**")
        rows.append([fig["bench"], fig["name"], format_value(fig["ours"], fig["unit"]),
                     format_value(fig["baseline"], fig["unit"]),
                     "-" if fig["ratio"] is None else f"{fig['ratio']:.2f}x",
                     fig["target"] or "-", met, fig.get("note") or ""])
    return intro + _list_table(["bench", "figure", "ours", "baseline", "ratio", "target", "met",
                                "note (what the baseline column is, when not gluon-face)"],
                               rows)


HEADS_FEATURES = os.path.join(RESULTS_DIR, "heads_features.json")


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def _faces_cell(face):
    """mean +- std over the seeds, or the one seed's figure said as such."""
    if face is None or face[0] is None:
        return DASH
    mean, std, seeds = face
    if seeds and len(seeds) == 1:
        return f"{100 * mean:.2f} (seed {seeds[0]} only)"
    return f"{100 * mean:.2f} +- {100 * (std or 0):.2f}"


def heads_table():
    """One row per head: accuracy and angular gap (features), accuracy (faces), mean +- std."""
    features = {}
    if os.path.exists(HEADS_FEATURES):
        with open(HEADS_FEATURES) as f:
            for run in json.load(f)["runs"]:
                features.setdefault(run["loss"], []).append(run)
    faces = {}
    if os.path.exists(BENCH_RESULTS):
        with open(BENCH_RESULTS) as f:
            for fig in json.load(f)["figures"]:
                head = (fig.get("details") or {}).get("head")
                if fig["bench"] == "learning" and head and fig["name"].startswith("head "):
                    faces[head] = (fig["ours"], fig["details"].get("std"),
                                   fig["details"].get("seeds"))
    if not features and not faces:
        return "*Not measured yet: run* ``python -m bench learning``.\n"
    rows = []
    # the per-head table's reference (bench.learning.UNTRAINED) goes first
    order = ["untrained"] if "untrained" in faces else []
    for head in order + list(features) + [h for h in faces if h not in list(features) + order]:
        runs = features.get(head, [])
        diverged = sum(not r["finite"] for r in runs)
        acc, acc_sd = _mean_std([r["accuracy"] for r in runs])
        gap, gap_sd = _mean_std([r["gap"] for r in runs])
        face = faces.get(head)
        rows.append(["untrained network (reference)" if head == "untrained" else f"``{head}``",
                     (DASH if acc is None else f"{100 * acc:.2f} +- {100 * acc_sd:.2f}")
                     + (f" ({diverged} of {len(runs)} runs diverged)" if diverged else ""),
                     DASH if gap is None else f"{gap:.3f} +- {gap_sd:.3f}",
                     _faces_cell(face)])
    return _list_table(["head", "features: held-out accuracy %", "features: angular gap (rad)",
                        "procedural faces: held-out accuracy %"], rows)


def write_all(out_dir):
    """Write every generated table into ``out_dir`` (atomically, one file each)."""
    os.makedirs(out_dir, exist_ok=True)
    for name, text in (("model_zoo_table.rst", model_zoo_table()),
                       ("model_cards_table.rst", model_cards_table()),
                       ("performance_table.rst", performance_table()),
                       ("heads_table.rst", heads_table())):
        path = os.path.join(out_dir, name)
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    write_all(os.path.join(HERE, "_generated"))
