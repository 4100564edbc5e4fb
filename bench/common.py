"""What every benchmark shares: the baseline's virtualenv, interleaved A/B runs, the tables.

Each measurement runs in a fresh subprocess (so peak memory is the measurement's own and no
state leaks between sides). "ours" is this checkout's gluonfr in the current interpreter;
"baseline" is PyPI's ``gluonfr==1.0.2`` (gluon-face) in ``bench/.baseline-venv``, created on
first use. Both get the same thread settings. Pairs run interleaved (A B A B ...) and the
median of the per-pair ratios is reported, because these shared machines drift.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
BASELINE_VENV = os.environ.get("GLUONFR_BASELINE_VENV", os.path.join(BENCH_DIR, ".baseline-venv"))
BASELINE_REQUIREMENTS = ["mxnet==1.9.1", "numpy<1.24", "gluonfr==1.0.2", "scikit-learn",
                         "scipy", "tqdm", "opencv-python-headless"]
WORK_DIR = os.path.join(BENCH_DIR, ".work")

#: thread settings both sides run with (measured, see docs/performance.rst)
THREAD_ENV = {
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
    "MXNET_CPU_WORKER_NTHREADS": os.environ.get("MXNET_CPU_WORKER_NTHREADS", "1"),
    "MXNET_ENGINE_TYPE": os.environ.get("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice"),
}


class WorkerError(RuntimeError):
    """A measurement subprocess failed; the message holds its stderr tail."""


def _baseline_ready(python):
    """Whether ``python`` can import everything the baseline workers need."""
    if not os.path.exists(python):
        return False
    check = ("import numpy, mxnet, sklearn, scipy, cv2, gluonfr, gluonfr.metrics; "
             "assert gluonfr.__version__ == '1.0.2', gluonfr.__version__")
    with tempfile.TemporaryDirectory() as cwd:  # never import this checkout's gluonfr
        proc = subprocess.run([python, "-I", "-c", check], cwd=cwd, capture_output=True)
    return proc.returncode == 0


def baseline_python():
    """Path of the baseline interpreter, creating its virtualenv on first use."""
    python = os.path.join(BASELINE_VENV, "bin", "python")
    stamp = os.path.join(BASELINE_VENV, ".installed")
    if os.path.exists(stamp):
        return python
    if not _baseline_ready(python):
        print(f"creating the baseline virtualenv {BASELINE_VENV} (gluonfr==1.0.2) ...",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", BASELINE_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *BASELINE_REQUIREMENTS],
                       check=True)
        if not _baseline_ready(python):
            raise WorkerError(f"{BASELINE_VENV}: the baseline virtualenv cannot import "
                              "gluonfr 1.0.2 / mxnet after installing "
                              + " ".join(BASELINE_REQUIREMENTS))
    with open(stamp, "w") as f:
        f.write("\n".join(BASELINE_REQUIREMENTS) + "\n")
    return python


def _env(overrides=None):
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env.update(overrides or {})
    env.pop("PYTHONPATH", None)
    return env


def run_worker(side, script, *args, timeout=3600, env=None):
    """Run one measurement and return the JSON dict its last stdout line holds.

    ``side`` 'ours' runs ``bench/workers/<script>.py`` with this interpreter;
    'baseline' runs ``bench/baseline/<script>.py`` with the baseline's, in isolated mode
    and from a scratch folder, so that neither can import the other's ``gluonfr``.
    ``env`` overrides environment variables (e.g. thread settings) for this run only.
    """
    if side == "ours":
        cmd = [sys.executable, "-I", os.path.join(BENCH_DIR, "workers", script + ".py")]
    elif side == "baseline":
        cmd = [baseline_python(), "-I", os.path.join(BENCH_DIR, "baseline", script + ".py")]
    else:
        raise ValueError(f"side must be 'ours' or 'baseline', got {side!r}")
    cmd += [str(a) for a in args]
    os.makedirs(WORK_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK_DIR) as cwd:
        proc = subprocess.run(cmd, cwd=cwd, env=_env(env), capture_output=True, text=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise WorkerError(f"{side} {script} {' '.join(map(str, args))} failed "
                          f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise WorkerError(f"{side} {script} printed no JSON result:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def rounds(variants, repeats=3, progress=None):
    """Run several measurements in turn, ``repeats`` rounds of A B C ... A B C ...

    ``variants`` maps a name to ``(side, script, args)`` or ``(side, script, args, env)``.
    Returns ``{name: [result of round 0, round 1, ...]}``. Keeping every variant inside every
    round means a ratio taken within a round compares runs that saw the same machine state.
    """
    out = {name: [] for name in variants}
    for r in range(repeats):
        for name, (side, script, args, *env) in variants.items():
            if progress:
                print(f"  [{progress} round {r + 1}/{repeats}] {name}", file=sys.stderr)
            out[name].append(run_worker(side, script, *args, env=env[0] if env else None))
    return out


def median_ratio(ours, baseline, higher_is_better=True):
    """Median of per-round ratios, oriented so that > 1 means ours is better."""
    pairs = [(o, b) for o, b in zip(ours, baseline) if o and b]
    if not pairs:
        return None
    return statistics.median((o / b if higher_is_better else b / o) for o, b in pairs)


def interleaved(key, ours_args, baseline_args, script, repeats=3, higher_is_better=True):
    """Run ours and the baseline alternately ``repeats`` times; medians and median ratio.

    Returns a dict with ``ours`` and ``baseline`` (medians of ``key``), ``ratio`` (median of
    the per-pair ratios ours/baseline, or baseline/ours when lower is better, so > 1 always
    means ours is better) and the raw runs.
    """
    runs = rounds({"ours": ("ours", script, ours_args),
                   "baseline": ("baseline", script, baseline_args)}, repeats)
    ours = [a[key] for a in runs["ours"]]
    base = [b[key] for b in runs["baseline"]]
    return {"ours": statistics.median(ours), "baseline": statistics.median(base),
            "ratio": median_ratio(ours, base, higher_is_better),
            "runs": list(zip(runs["ours"], runs["baseline"]))}


def median(values):
    """Median of the values that were measured (None where none was)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine_info():
    """CPU, cores, thread settings and library versions, for the results file."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for name in ("mxnet", "numpy", "gluoncv", "opencv-python-headless", "scikit-learn",
                 "onnxruntime"):
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "threads": dict(THREAD_ENV), "versions": versions,
            "baseline": "gluonfr==1.0.2 (gluon-face) in " + os.path.relpath(BASELINE_VENV, REPO),
            "baseline_versions": baseline_versions(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def baseline_versions():
    """Library versions inside the baseline's virtualenv."""
    code = ("import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
            "('gluonfr', 'mxnet', 'numpy', 'scipy', 'scikit-learn')}))")
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([baseline_python(), "-I", "-c", code], cwd=cwd,
                              capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


class Figure(dict):
    """One row of the results: a named figure with our value, the baseline's and the target.

    ``target`` is a human-readable rule (e.g. ">= 1.5x baseline") and ``met`` whether it
    holds (None where a figure has no target). ``key`` identifies the row across runs whose
    ``name`` changes with the settings (a partial run of a bench replaces the rows with its
    keys; default: the name). Extra keyword arguments (raw runs, settings) are kept under
    ``details`` in results.json.
    """

    def __init__(self, bench, name, ours, baseline=None, unit="", ratio=None, target="",
                 met=None, note="", key=None, **details):
        super().__init__(bench=bench, name=name, ours=ours, baseline=baseline, unit=unit,
                         ratio=ratio, target=target, met=met, note=note)
        if key is not None:
            self["key"] = key
        if details:
            self["details"] = details


def row_key(fig):
    """What identifies a results row across runs: ``(bench, key or name)``."""
    return fig["bench"], fig.get("key") or fig["name"]


def merge_rows(old, new, bench, partial):
    """The rows of ``old`` to keep beside a run of ``bench`` that produced ``new``.

    A full run replaces every row of its bench; a partial one (some tables / heads) only the
    rows it measured again, so results measured in parts add up.
    """
    if not partial:
        return [fig for fig in old if fig["bench"] != bench]
    measured = {row_key(fig) for fig in new}
    return [fig for fig in old if row_key(fig) not in measured]


def print_table(title, figures, file=None):
    """Print figures as an aligned text table."""
    print(f"\n== {title}", file=file)
    header = f"{'figure':<64} {'ours':>14} {'baseline':>14} {'ratio':>7}  {'target':<22} met"
    print(header, file=file)
    print("-" * len(header), file=file)
    for fig in figures:
        print(f"{fig['name'][:64]:<64} {_fmt(fig['ours']):>14} {_fmt(fig['baseline']):>14} "
              f"{_fmt(fig['ratio'], 2):>7}  {fig['target'][:22]:<22} "
              f"{'' if fig['met'] is None else ('yes' if fig['met'] else 'NO')}", file=file)


def _fmt(value, digits=None):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if digits is not None:
        return f"{value:.{digits}f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_value(value, unit=""):
    """A figure as the results tables show it ("-" where it was not measured)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return f"{text} {unit}".strip()


def emit(figures):
    """Print figures as the JSON line ``python -m bench`` collects (after the table)."""
    print(json.dumps({"figures": figures}))
