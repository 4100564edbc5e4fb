"""Optional dependencies: one error message for a missing extra.

MXNet is an extra too (``gluonfr[cpu]``, ``gluonfr[cu112]`` ...) so that a published wheel
never installs the CPU ``mxnet`` beside a user's ``mxnet-cu*`` (both own ``mxnet/``). This
module imports nothing heavy: ``gluonfr/__init__.py`` uses it before mxnet is imported.
"""
import importlib

__all__ = ["EXTRAS", "MXNET_EXTRAS", "MissingDependencyError", "import_optional"]

#: The MXNet 1.9.1 wheels on PyPI, by extra: ``pip install gluonfr[<extra>]``.
MXNET_EXTRAS = {
    "cpu": "mxnet==1.9.1",
    "cu101": "mxnet-cu101==1.9.1",
    "cu102": "mxnet-cu102==1.9.1",
    "cu110": "mxnet-cu110==1.9.1",
    "cu111": "mxnet-cu111==1.9.1",
    "cu112": "mxnet-cu112==1.9.1",
    "cu113": "mxnet-cu113==1.9.1",
    "cu114": "mxnet-cu114==1.9.1",
    "cu115": "mxnet-cu115==1.9.1",
    "cu116": "mxnet-cu116==1.9.1",
    "cu117": "mxnet-cu117==1.9.1",
}

#: The other extras: features whose libraries the core does not need.
EXTRAS = {
    "onnx": ["onnx>=1.14", "onnxruntime>=1.15"],
    "viz": ["matplotlib>=3.5", "tensorboardX>=2.5"],
    "agedb": ["scipy>=1.8"],
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def missing_mxnet_message():
    """What ``import gluonfr`` says when no MXNet is installed."""
    return ("gluonfr needs MXNet 1.9.1, which it installs only through an extra so that you "
            "choose the build: pip install 'gluonfr[cpu]' (CPU), or the CUDA wheel of your "
            "driver, e.g. pip install 'gluonfr[cu117]' (extras cu101, cu102, cu110 ... cu117; "
            "or install mxnet / mxnet-cuXXX 1.9.1 yourself)")


def import_optional(module, extra, feature):
    """Import ``module``, or raise :class:`MissingDependencyError` naming ``gluonfr[extra]``.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"onnxruntime"``.
    extra : str
        The gluonfr extra that installs it, e.g. ``"onnx"``.
    feature : str
        What needs it, for the message, e.g. ``"FaceEmbedder(backend='onnx')"``.

    Only a missing ``module`` itself is translated; an error raised while importing an
    installed module propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or module.split(".")[0] != err.name.split(".")[0]:
            raise
        raise MissingDependencyError(
            f"{feature} needs {module.split('.')[0]}, an optional dependency: "
            f"pip install 'gluonfr[{extra}]'") from err
