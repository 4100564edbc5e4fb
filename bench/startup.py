"""Interpreter start-up with gluonfr's numpy hook (``gluonfr-numpy-hook.pth``) installed.

The hook must cost nothing to tools that never import mxnet. Fresh ``python -c pass``
processes of this environment: the hook module's import time and its share of all that
``site`` does at start-up (``-X importtime``, cumulative microseconds), and whether start-up
imported numpy (it must not). Ours only: a wall-clock comparison with another virtualenv
would mostly measure other ``.pth`` files (an editable install's finder imports pathlib).
"""
import re
import subprocess
import sys
import tempfile

from bench.common import Figure, _env, median, print_table

STATE = ("import sys; print('numpy' in sys.modules, '_gluonfr_numpy_hook' in sys.modules, "
         "any(type(f).__name__ == 'MxnetImportHook' for f in sys.meta_path))")


def _import_us(python, cwd):
    """Cumulative ``-X importtime`` microseconds of the hook module and of ``site``."""
    err = subprocess.run([python, "-X", "importtime", "-c", "pass"], cwd=cwd, env=_env(),
                         capture_output=True, text=True, check=True).stderr
    out = {}
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(_gluonfr_numpy_hook|site)$", line)
        if m:
            out[m.group(2)] = int(m.group(1))
    return out.get("_gluonfr_numpy_hook"), out.get("site")


def run(quick=False):
    repeats = 3 if quick else 30
    with tempfile.TemporaryDirectory() as cwd:  # never this checkout's files
        state = subprocess.run([sys.executable, "-c", STATE], cwd=cwd, env=_env(),
                               capture_output=True, text=True, check=True).stdout.split()
        times = [_import_us(sys.executable, cwd) for _ in range(repeats)]
    hooked = state[1:] == ["True", "True"]
    hook = [h for h, _ in times if h is not None]
    share = [h / s for h, s in times if h is not None and s]
    figures = [
        Figure("startup", "hook module import at start-up (us, cumulative)", median(hook),
               unit="us", target="< 1000 us",
               met=None if median(hook) is None else median(hook) < 1000, runs=hook,
               note="" if hooked else "hook not installed here: reinstall gluonfr"),
        Figure("startup", "hook's share of site's start-up imports", median(share),
               unit="", target="< 0.05", met=None if not share else median(share) < 0.05,
               runs=share),
        Figure("startup", "numpy imported by start-up (1 = yes)",
               1 if state[0] == "True" else 0, unit="", target="0",
               met=hooked and state[0] == "False"),
    ]
    print_table("interpreter start-up with the numpy hook", figures)
    return figures
