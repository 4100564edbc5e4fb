"""gluonfr.engine.collective: the single-process collective and argument errors."""
from gluonfr.engine.collective import Collective

import mxnet as mx
import numpy as np
import pytest


def test_local_collective_is_rank_0_of_1_and_returns_its_input():
    coll = Collective.local()
    assert (coll.rank, coll.num_workers) == (0, 1)
    x = mx.nd.array(np.arange(6).reshape(3, 2))
    assert coll.all_gather(x) is x
    assert coll.all_reduce(x) is x
    assert coll.all_reduce(x, op="max") is x
    assert "local" in repr(coll)


def test_bad_arguments_are_named():
    coll = Collective.local()
    with pytest.raises(ValueError, match="op must be one of sum, max, got 'mean'"):
        coll.all_reduce(mx.nd.ones((2,)), op="mean")
    with pytest.raises(TypeError, match="all_gather: x must be an mx.nd.NDArray, got ndarray"):
        coll.all_gather(np.ones(2))
    with pytest.raises(ValueError, match="needs a dist_sync kvstore, got 'local'"):
        Collective(mx.kv.create("local"))
