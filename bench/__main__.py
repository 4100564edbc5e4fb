"""Run every benchmark, print their tables, write bench/results.json and bench/results.md.

``python -m bench`` runs them all; ``python -m bench inference data`` runs some.
"""
import argparse
import datetime
import importlib
import json
import os
import sys
import time
import traceback

from bench.common import BENCH_DIR, format_value, machine_info, merge_rows

ALL = ["counts", "inference", "heads", "train_step", "threads", "data", "verification",
       "learning", "ijb", "startup", "detect", "import_time", "partial_fc"]


def write_results(results, json_path, md_path):
    """Write the JSON results and the markdown summary, each atomically."""
    from gluonfr.utils.fileio import atomic_open

    for path, text in ((json_path, json.dumps(results, indent=1) + "\n"),
                       (md_path, to_markdown(results))):
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(text)


def to_markdown(results):
    m = results["machine"]
    lines = [f"# gluonfr benchmarks ({results['date']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; threads "
             + ", ".join(f"{k}={v}" for k, v in m["threads"].items()) + "; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
             f"Baseline: {m['baseline']} ("
             + ", ".join(f"{k} {v}" for k, v in m.get("baseline_versions", {}).items())
             + "), same run, interleaved, median ratio (> 1: gluonfr better).",
             f"Load average at start {m.get('loadavg_at_start')}, at end "
             f"{results.get('loadavg_at_end')}; seconds per bench {results.get('seconds')}.",
             ""]
    smoke = sorted({fig["bench"] for fig in results["figures"] if fig.get("quick")})
    if smoke:
        lines += [f"**Smoke-run rows (`--quick`: tiny repeats and sizes, not measurements): "
                  f"{', '.join(smoke)}.**", ""]
    lines += ["| bench | figure | ours | baseline | ratio | target | met | note |",
              "|---|---|---|---|---|---|---|---|"]
    for fig in results["figures"]:
        met = "" if fig["met"] is None else ("yes" if fig["met"] else "**no**")
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            fig["bench"] + (" (smoke)" if fig.get("quick") else ""), fig["name"],
            format_value(fig["ours"], fig["unit"]),
            format_value(fig["baseline"], fig["unit"]),
            "-" if fig["ratio"] is None else f"{fig['ratio']:.2f}x", fig["target"] or "-", met,
            fig.get("note", "").replace("|", "/")))
    for name, err in results.get("errors", {}).items():
        lines.append(f"\n{name} failed: `{err.splitlines()[-1] if err else ''}`")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benches", nargs="*", default=ALL, help=f"subset of {ALL}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--out", default=BENCH_DIR, help="folder for results.json/.md")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benches) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {ALL}")
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "machine": machine_info(), "quick": args.quick, "figures": [], "errors": {},
               "seconds": {}}
    json_path = os.path.join(args.out, "results.json")
    if os.path.exists(json_path) and set(args.benches) != set(ALL):
        # a partial run updates only its own benches' rows (see merge_rows)
        with open(json_path) as f:
            old = json.load(f)
        results["figures"] = old.get("figures", [])
        results["seconds"] = {k: v for k, v in old.get("seconds", {}).items()
                              if k not in args.benches}
        results["errors"] = {k: v for k, v in old.get("errors", {}).items()
                             if k not in args.benches}
    for name in args.benches:
        module = importlib.import_module(f"bench.{name}")
        t0 = time.time()
        new = []
        try:
            for fig in module.run(quick=args.quick):
                fig["quick"] = args.quick
                fig["date"] = results["date"]
                new.append(fig)
        except Exception:  # noqa: BLE001 - one broken bench must not hide the others
            results["errors"][name] = traceback.format_exc()
            print(f"\n== {name} FAILED\n{results['errors'][name]}", file=sys.stderr)
        # a bench may run some of its rows only (bench.learning: some heads); ``partial()``
        # says so, and then its other rows stay
        partial = getattr(module, "partial", lambda: False)()
        results["figures"] = merge_rows(results["figures"], new, name, partial) + new
        results["seconds"][name] = round(time.time() - t0)
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results(results, json_path, os.path.join(args.out, "results.md"))
    print(f"\nwrote {json_path} and results.md")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
