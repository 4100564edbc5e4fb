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


def baseline_python():
    """Path of the baseline interpreter, creating its virtualenv on first use."""
    python = os.path.join(BASELINE_VENV, "bin", "python")
    stamp = os.path.join(BASELINE_VENV, ".installed")
    if os.path.exists(stamp):
        return python
    print(f"creating the baseline virtualenv {BASELINE_VENV} (gluonfr==1.0.2) ...",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", BASELINE_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *BASELINE_REQUIREMENTS], check=True)
    with open(stamp, "w") as f:
        f.write("\n".join(BASELINE_REQUIREMENTS) + "\n")
    return python


def _env():
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env.pop("PYTHONPATH", None)
    return env


def run_worker(side, script, *args, timeout=3600):
    """Run one measurement and return the JSON dict its last stdout line holds.

    ``side`` 'ours' runs ``bench/workers/<script>.py`` with this interpreter;
    'baseline' runs ``bench/baseline/<script>.py`` with the baseline's, in isolated mode
    and from a scratch folder, so that neither can import the other's ``gluonfr``.
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
        proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise WorkerError(f"{side} {script} {' '.join(map(str, args))} failed "
                          f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise WorkerError(f"{side} {script} printed no JSON result:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def interleaved(key, ours_args, baseline_args, script, repeats=3, higher_is_better=True):
    """Run ours and the baseline alternately ``repeats`` times; medians and median ratio.

    Returns a dict with ``ours`` and ``baseline`` (medians of ``key``), ``ratio`` (median of
    the per-pair ratios ours/baseline, or baseline/ours when lower is better, so > 1 always
    means ours is better) and the raw runs.
    """
    runs = []
    for _ in range(repeats):
        a = run_worker("ours", script, *ours_args)
        b = run_worker("baseline", script, *baseline_args)
        runs.append((a, b))
    ours = [a[key] for a, _ in runs]
    base = [b[key] for _, b in runs]
    ratios = [(o / b if higher_is_better else b / o) for o, b in zip(ours, base)]
    return {"ours": statistics.median(ours), "baseline": statistics.median(base),
            "ratio": statistics.median(ratios), "runs": runs}


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
            "baseline": "gluonfr==1.0.2 (gluon-face) in " + os.path.relpath(BASELINE_VENV, REPO)}


class Figure(dict):
    """One row of the results: a named figure with our value, the baseline's and the target.

    ``target`` is a human-readable rule (e.g. ">= 1.5x baseline") and ``met`` whether it
    holds (None where a figure has no target).
    """

    def __init__(self, bench, name, ours, baseline=None, unit="", ratio=None, target="",
                 met=None, note=""):
        super().__init__(bench=bench, name=name, ours=ours, baseline=baseline, unit=unit,
                         ratio=ratio, target=target, met=met, note=note)


def print_table(title, figures, file=None):
    """Print figures as an aligned text table."""
    print(f"\n== {title}", file=file)
    header = f"{'figure':<46} {'ours':>12} {'baseline':>12} {'ratio':>7}  {'target':<22} met"
    print(header, file=file)
    print("-" * len(header), file=file)
    for fig in figures:
        print(f"{fig['name'][:46]:<46} {_fmt(fig['ours']):>12} {_fmt(fig['baseline']):>12} "
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
