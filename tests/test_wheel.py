"""The built wheel, installed into clean virtualenvs and run from outside the checkout.

Offline and quick: the wheel is built without build isolation (this environment's
setuptools), and the clean venvs see this environment's already-installed dependencies
through a path file pointing at folders of links (all but gluonfr itself, with or without
MXNet), so ``pip install`` resolves every requirement without a download. A requirement the
links do not satisfy (an unconditional ``mxnet``, say) makes the offline install fail.
"""
import json
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PTH = "gluonfr-numpy-hook.pth"
OWN = ("gluonfr", "_gluonfr_numpy_hook", "__editable__", "__pycache__")
# a clean environment: no PYTHONPATH leading back to the checkout (its gluonfr.egg-info would
# even make pip think gluonfr is installed)
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def pip(*args, python=None):
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    if python:
        cmd += ["--python", python]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def link_dependencies(dest, with_mxnet):
    """A folder of links to this environment's packages, without gluonfr (and mxnet)."""
    site = sysconfig.get_paths()["purelib"]
    dest.mkdir()
    for name in os.listdir(site):
        if name.startswith(OWN) or name.endswith(".pth"):
            continue
        if name.startswith("mxnet") and not with_mxnet:
            continue
        os.symlink(os.path.join(site, name), dest / name)
    return dest


def make_venv(path, dependencies):
    """A venv without pip whose site-packages ends with a path file to ``dependencies``."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   env=ENV)
    python = str(path / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, env=ENV).stdout.strip()
    with open(os.path.join(site, "zz-dependencies.pth"), "w") as f:
        f.write(str(dependencies) + "\n")
    return python, site


def run(python, code, cwd):
    return subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env=ENV)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), REPO)
    (name,) = os.listdir(out)
    return out / name


@pytest.fixture(scope="module")
def deps(tmp_path_factory):
    base = tmp_path_factory.mktemp("deps")
    return {"mxnet": link_dependencies(base / "all", True),
            "none": link_dependencies(base / "no-mxnet", False)}


def test_wheel_holds_the_hook_and_mxnet_only_as_extras(wheel):
    import gluonfr

    assert wheel.name == f"gluonfr-{gluonfr.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert PTH in names and "_gluonfr_numpy_hook.py" in names
        assert z.read(PTH).decode().startswith("import _gluonfr_numpy_hook")
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    mxnet = [r for r in requires if r.startswith("mxnet")]
    assert 'mxnet==1.9.1; extra == "cpu"' in mxnet
    assert 'mxnet-cu117==1.9.1; extra == "cu117"' in mxnet
    assert all("extra ==" in r for r in mxnet)


def test_installed_wheel_runs_outside_the_checkout(wheel, deps, tmp_path):
    python, site = make_venv(tmp_path / "venv", deps["mxnet"])
    pip("install", "--no-index", str(wheel), python=python)  # dependencies resolve offline
    assert os.path.exists(os.path.join(site, PTH))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    helped = subprocess.run([str(tmp_path / "venv" / "bin" / "gluonfr-verify"), "--help"],
                            capture_output=True, text=True, cwd=cwd, env=ENV)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert helped.stdout.startswith("usage: gluonfr-verify ")
    # mxnet first, as GluonCV / insightface snippets do; then the installed gluonfr
    code = ("import sys, json, mxnet as mx\nstate = 'numpy' in sys.modules\n"
            "import gluonfr\nfrom gluonfr.model_zoo import get_model\n"
            "net = get_model('mobilefacenet', embedding_size=16, width_mult=0.25)\n"
            "net.initialize()\ny = net(mx.nd.ones((2, 3, 112, 112)))\n"
            "print(json.dumps({'file': gluonfr.__file__, 'shape': y.shape, "
            "'finite': bool(mx.nd.contrib.isfinite(y).min().asscalar())}))")
    proc = run(python, code, cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["file"] == os.path.join(site, "gluonfr", "__init__.py")
    assert out["shape"] == [2, 16] and out["finite"]
    # nothing at start-up beyond the hook
    proc = run(python, "import sys; print('numpy' in sys.modules, "
                       "'_gluonfr_numpy_hook' in sys.modules)", cwd)
    assert proc.stdout.split() == ["False", "True"]


def test_plain_install_has_no_mxnet_and_names_the_extra(wheel, deps, tmp_path):
    python, site = make_venv(tmp_path / "venv", deps["none"])
    pip("install", "--no-index", str(wheel), python=python)  # would need mxnet if required
    proc = run(python, "import gluonfr", tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: gluonfr needs MXNet 1.9.1")
    assert "pip install 'gluonfr[cpu]'" in last and "gluonfr[cu117]" in last


def test_editable_install_also_gets_the_hook(deps, tmp_path):
    python, site = make_venv(tmp_path / "venv", deps["mxnet"])
    pip("install", "--no-index", "--no-deps", "--no-build-isolation", "-e", REPO,
        python=python)
    assert os.path.exists(os.path.join(site, PTH))
    proc = run(python, "import mxnet, gluonfr; print(gluonfr.__file__)", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == os.path.join(REPO, "gluonfr", "__init__.py")
