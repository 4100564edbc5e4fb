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
