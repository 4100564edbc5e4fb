"""Shared test fixtures. Tests keep images tiny and iterations few: heavy runs live in bench/."""
import os

import gluonfr  # noqa: F401  (restores numpy aliases before any test module imports mxnet)

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(REPO), "shared")


@pytest.fixture(scope="session")
def shared_dir():
    """``../shared`` beside the checkout (as CI has it); tests that need it skip otherwise."""
    if not os.path.isdir(SHARED):
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def third_party_store(shared_dir, tmp_path_factory):
    """The third-party model store pointed at ``../shared/data/models`` (a fresh cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GLUONFR_THIRD_PARTY_URL", os.path.join(shared_dir, "data", "models"))
        mp.setenv("GLUONFR_HOME", str(tmp_path_factory.mktemp("gluonfr-home")))
        yield


@pytest.fixture(scope="session")
def face_detector(third_party_store):
    """A default :class:`gluonfr.detect.FaceDetector` (YuNet through the store)."""
    from gluonfr.detect import FaceDetector

    return FaceDetector()
