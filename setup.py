"""Install gluonfr.

The MXNet wheel is ``mxnet==1.9.1`` (CPU). On a GPU machine install the matching CUDA wheel
instead by naming it before the install, e.g.::

    GLUONFR_MXNET="mxnet-cu112==1.9.1" pip install gluonfr

(or install ``mxnet-cu112`` first and set ``GLUONFR_MXNET=none`` so no MXNet is required).
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "gluonfr", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


#: Every command line: ``gluonfr-<command>=gluonfr.cli.<module>:main`` (see gluonfr/cli/__init__.py);
#: tests/test_cli.py runs ``--help`` of each entry of this list.
CONSOLE_SCRIPTS = [
    "gluonfr-demo=gluonfr.cli.demo:main",
    "gluonfr-eval=gluonfr.cli.eval:main",
    "gluonfr-eval-ijb=gluonfr.cli.eval_ijb:main",
    "gluonfr-export-onnx=gluonfr.cli.export_onnx:main",
    "gluonfr-import=gluonfr.cli.import_:main",
    "gluonfr-launch-dist=gluonfr.cli.launch_dist:main",
    "gluonfr-pack-bin=gluonfr.cli.pack_bin:main",
    "gluonfr-pack-rec=gluonfr.cli.pack_rec:main",
    "gluonfr-publish=gluonfr.cli.publish:main",
    "gluonfr-show-dataset=gluonfr.cli.show_dataset:main",
    "gluonfr-train=gluonfr.cli.train:main",
    "gluonfr-verify=gluonfr.cli.verify:main",
]


def mxnet_requirement():
    name = os.environ.get("GLUONFR_MXNET", "mxnet==1.9.1").strip()
    return [] if name.lower() in ("", "none") else [name]


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
    install_requires=mxnet_requirement() + [
        # mxnet 1.9.1 needs numpy < 2; 1.24+ works because gluonfr restores the removed aliases
        "numpy>=1.23,<2",
        "gluoncv>=0.10",
        "opencv-python-headless>=4.5",
        "tqdm>=4.40",
        "tensorboardX>=2.5",
        "matplotlib>=3.5",
        "onnx>=1.14",
        "onnxruntime>=1.15",
    ],
    extras_require={
        # scikit-learn: the tests' independent references (KFold, roc_curve, normalize)
        "test": ["pytest>=7", "ruff>=0.4", "scikit-learn>=1.3"],
        "docs": ["sphinx>=7", "sphinx-rtd-theme>=2"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
