"""Time to import ``iresnet100`` from each format (it should take seconds, not minutes).

Sources are written first (not timed): an insightface fresnet-E symbol + params through
MXNet's symbol API (tests/fixtures/insightface_symbols.py), and, when a torch interpreter is
given (``GLUONFR_TORCH_PYTHON``, e.g. ``/work/torch-venv/bin/python``), an arcface_torch
state dict and ONNX export through torch (tests/fixtures/make_torch_fixtures.py). Each
``import_model`` runs in a fresh process (read, match, build, load), as ``gluonfr-import``
would. ``--quick`` imports a one-unit-per-stage network instead, to prove the bench runs.
"""
import os
import subprocess
import sys
import time

from bench.common import WORK_DIR, Figure, print_table

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures")
FULL = ((3, 13, 30, 3), (64, 64, 128, 256, 512), 512)
QUICK = ((1, 1, 1, 1), (16, 16, 32, 32, 64), 64)

_WRITE_MXNET = """
import sys
sys.path.insert(0, {fixtures!r})
import insightface_symbols as fx
fx.write_checkpoint(fx.fresnet(units={units!r}, filters={filters!r}, emb_size={emb}),
                    {prefix!r})
"""
_IMPORT = """
import time, sys
t0 = time.perf_counter()
import gluonfr
from gluonfr.model_zoo import import_model
t1 = time.perf_counter()
net = import_model(sys.argv[1])
print(time.perf_counter() - t1, net.import_info["name"], t1 - t0)
"""


def _run(code, *args):
    return subprocess.run([sys.executable, "-c", code, *args], check=True,
                          capture_output=True, text=True).stdout


def run(quick=False):
    units, filters, emb = QUICK if quick else FULL
    folder = os.path.join(WORK_DIR, "import_time", "quick" if quick else "full")
    os.makedirs(folder, exist_ok=True)
    sources = {}
    prefix = os.path.join(folder, "model")
    if not os.path.exists(prefix + "-0000.params"):
        _run(_WRITE_MXNET.format(fixtures=FIXTURES, units=units, filters=filters, emb=emb,
                                 prefix=prefix))
    sources["insightface-mxnet (symbol + params)"] = prefix + ",0"
    torch_python = os.environ.get("GLUONFR_TORCH_PYTHON")
    if torch_python:
        stem = os.path.join(folder, "backbone")
        if not os.path.exists(stem + ".onnx"):
            subprocess.run([torch_python, os.path.join(FIXTURES, "make_torch_fixtures.py"),
                            "--units", ",".join(map(str, units)),
                            "--widths", ",".join(map(str, filters[1:])),
                            "--embedding", str(emb), "--out", stem], check=True,
                           capture_output=True)
        sources["arcface-torch (.pt, read without torch)"] = stem + ".pt"
        sources["arcface-torch (.onnx)"] = stem + ".onnx"
    figures = []
    name = "one unit per stage" if quick else "iresnet100"
    for label, source in sources.items():
        t0 = time.perf_counter()
        seconds, arch, import_s = _run(_IMPORT, source).split()
        wall = time.perf_counter() - t0
        figures.append(Figure("import_time", f"import {name} from {label}", float(seconds),
                              unit="s", target="seconds, not minutes",
                              met=float(seconds) < 60,
                              note=f"{arch}; fresh process {wall:.1f} s incl. "
                                   f"{float(import_s):.1f} s import gluonfr"))
    if not torch_python:
        figures.append(Figure("import_time", "arcface-torch rows", None,
                              note="skipped: set GLUONFR_TORCH_PYTHON to a python with torch"))
    print_table("import time", figures)
    return figures


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
