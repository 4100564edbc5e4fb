"""The start-up numpy hook (gluonfr-numpy-hook.pth), in fresh interpreters of this environment.

Marked compat: ``make test-compat`` runs these under numpy 1.23 as well, the main suite under
1.26; without the hook mxnet 1.9.1 fails to import on 1.26 and warns on 1.23.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.compat

HOOK_STATE = ("import sys; print(json.dumps({'loaded': sorted(m for m in ('numpy', 'mxnet', "
              "'gluonfr') if m in sys.modules), 'hook': [type(f).__name__ for f in "
              "sys.meta_path].count('MxnetImportHook')}))")
NOT_INSTALLED = ("gluonfr-numpy-hook.pth is not active in this environment; reinstall gluonfr "
                 "(pip install -e . or make install)")

# mxnet's own import, recording numpy's alias deprecations (numpy 1.23) or failing (1.24+)
IMPORT_MXNET = textwrap.dedent("""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import mxnet as mx
    aliases = [str(w.message) for w in caught if "deprecated alias" in str(w.message)]
    assert not aliases, aliases
""")
FORWARD = textwrap.dedent("""
    from gluonfr.model_zoo import get_model
    net = get_model("mobilefacenet", embedding_size=16, width_mult=0.25)
    net.initialize()
    print("out", net(mx.nd.zeros((1, 3, 112, 112))).shape, mx.__version__)
""")


def run(code, cwd=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd)


def test_start_up_installs_the_hook_and_imports_nothing():
    proc = run("import json; " + HOOK_STATE)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["hook"] == 1, NOT_INSTALLED
    assert state["loaded"] == []  # not even numpy


def test_mxnet_first_then_gluonfr():
    # a probe for mxnet before the import (as libraries checking for it do) must not use the
    # hook up
    probe = "import importlib.util\nassert importlib.util.find_spec('mxnet') is not None\n"
    proc = run(probe + IMPORT_MXNET + FORWARD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "out (1, 16) 1.9.1" in proc.stdout


def test_gluonfr_first_then_mxnet():
    proc = run("import gluonfr\n" + IMPORT_MXNET + FORWARD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "out (1, 16) 1.9.1" in proc.stdout


def test_without_the_hook_mxnet_breaks():
    # the reference: the same import with the finder taken out fails (numpy >= 1.24) or
    # warns about every alias (numpy 1.23) -- so the tests above pass because of the hook
    code = ("import sys\nsys.meta_path[:] = [f for f in sys.meta_path "
            "if type(f).__name__ != 'MxnetImportHook']\n" + IMPORT_MXNET)
    proc = run(code)
    assert proc.returncode != 0
    assert "np.bool" in proc.stderr or "'bool'" in proc.stderr or "deprecated alias" in \
        proc.stderr, proc.stderr[-2000:]


def test_a_pip_build_beside_the_hook(tmp_path):
    # a setuptools build in a fresh interpreter of this environment: the hook is there and
    # inert (the build never imports numpy or mxnet through it) and the wheel is made
    pkg = tmp_path / "tinypkg"
    pkg.mkdir()
    (pkg / "tinymod.py").write_text("VALUE = 1\n")
    state = tmp_path / "state.json"
    (pkg / "setup.py").write_text(
        "import json, sys\nfrom setuptools import setup\n"
        + HOOK_STATE.replace("print(json.dumps(", f"open({str(state)!r}, 'w').write(json.dumps(")
        + "\nsetup(name='tinypkg', version='0.1', py_modules=['tinymod'])\n")
    out = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out), str(pkg)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(out) == ["tinypkg-0.1-py3-none-any.whl"]
    assert json.loads(state.read_text()) == {"loaded": [], "hook": 1}, NOT_INSTALLED
