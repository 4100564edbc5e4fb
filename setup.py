"""Install gluonfr.

MXNet is an extra, so that you choose its build and a CPU ``mxnet`` never lands beside a
``mxnet-cu*`` (both own ``mxnet/``)::

    pip install "gluonfr[cpu]"           # mxnet==1.9.1
    pip install "gluonfr[cu117]"         # mxnet-cu117==1.9.1 (cu101 ... cu117)
    pip install "gluonfr[cpu,all]"       # + ONNX export / ONNX Runtime, plots, TensorBoard

The wheel also installs ``gluonfr-numpy-hook.pth`` at the top of site-packages: it lets
``import mxnet`` work under numpy >= 1.24 in any import order (see _gluonfr_numpy_hook.py).
"""
import os
import re
import runpy

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))

#: The start-up file and its one line (Python runs ``import`` lines of ``*.pth`` files).
PTH_NAME = "gluonfr-numpy-hook.pth"
PTH_LINE = "import _gluonfr_numpy_hook; _gluonfr_numpy_hook.install()\n"


def read_version():
    with open(os.path.join(HERE, "gluonfr", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


# the extras' one home; the file imports only importlib, so running it needs no MXNet
_OPTIONAL = runpy.run_path(os.path.join(HERE, "gluonfr", "_optional.py"))
EXTRAS = {extra: [req] for extra, req in _OPTIONAL["MXNET_EXTRAS"].items()}
EXTRAS.update(_OPTIONAL["EXTRAS"])
EXTRAS["all"] = sorted({req for name in _OPTIONAL["EXTRAS"] for req in EXTRAS[name]})
# scikit-learn: the tests' independent references (KFold, roc_curve, normalize); setuptools,
# wheel: the wheel test builds without isolation (offline, PEP 660 editable from setuptools 64)
EXTRAS["test"] = ["pytest>=7", "ruff>=0.4", "scikit-learn>=1.3", "setuptools>=64", "wheel>=0.40"]
EXTRAS["docs"] = ["sphinx>=7", "sphinx-rtd-theme>=2"]


class BuildPyWithPth(build_py):
    """build_py that also writes :data:`PTH_NAME` at the top of the built tree.

    A regular wheel is packed from ``build_lib``; setuptools' editable wheels (PEP 660) are
    packed from the install folder instead, so in editable mode the file goes there.
    """

    def run(self):
        super().run()
        target = self.build_lib
        if getattr(self, "editable_mode", False):
            target = self.get_finalized_command("install").install_lib
        self.mkpath(target)
        with open(os.path.join(target, PTH_NAME), "w", encoding="utf-8") as f:
            f.write(PTH_LINE)


#: Every command line: ``gluonfr-<command>=gluonfr.cli.<module>:main`` (see
#: gluonfr/cli/__init__.py); tests/test_cli.py runs ``--help`` of each entry of this list.
CONSOLE_SCRIPTS = [
    "gluonfr-align=gluonfr.cli.align:main",
    "gluonfr-demo=gluonfr.cli.demo:main",
    "gluonfr-eval=gluonfr.cli.eval:main",
    "gluonfr-eval-ijb=gluonfr.cli.eval_ijb:main",
    "gluonfr-export-onnx=gluonfr.cli.export_onnx:main",
    "gluonfr-import=gluonfr.cli.import_:main",
    "gluonfr-launch-dist=gluonfr.cli.launch_dist:main",
    "gluonfr-merge-classifier=gluonfr.cli.merge_classifier:main",
    "gluonfr-pack-bin=gluonfr.cli.pack_bin:main",
    "gluonfr-pack-rec=gluonfr.cli.pack_rec:main",
    "gluonfr-publish=gluonfr.cli.publish:main",
    "gluonfr-show-dataset=gluonfr.cli.show_dataset:main",
    "gluonfr-train=gluonfr.cli.train:main",
    "gluonfr-verify=gluonfr.cli.verify:main",
]


setup(
    name="gluonfr",
    version=read_version(),
    description="Face recognition with MXNet Gluon: MobileFaceNet / IR-ResNet, "
                "ArcFace / CosFace / L2-softmax, insightface data and verification",
    long_description=open(os.path.join(HERE, "README.rst"), encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["gluonfr", "gluonfr.*"]),
    package_data={"gluonfr.engine": ["recipes/*.toml"]},  # --config NAME
    py_modules=["_gluonfr_numpy_hook"],
    install_requires=[
        # mxnet 1.9.1 needs numpy < 2; 1.24+ works because of the numpy hook
        "numpy>=1.23,<2",
        "gluoncv>=0.10",
        "opencv-python-headless>=4.8",  # cv2.FaceDetectorYN (gluonfr.detect)
        "tqdm>=4.40",
    ],
    extras_require=EXTRAS,
    cmdclass={"build_py": BuildPyWithPth},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
