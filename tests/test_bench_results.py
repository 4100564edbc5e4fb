"""bench results: a partial run (some heads of the learning bench) keeps the other rows."""
import bench.learning as learning
from bench.common import Figure, merge_rows


def _fig(bench, name, ours, key=None):
    return Figure(bench, name, ours, key=key)


def test_partial_run_replaces_only_its_own_rows():
    old = [_fig("heads", "arcface ms", 1.0),
           _fig("learning", "demo arcface", 0.8),
           _fig("learning", "head arcface: 60 iterations", 0.5, key="head arcface"),
           _fig("learning", "head cosface: 60 iterations", 0.6, key="head cosface")]
    # the arcface row again at another budget (another name, the same key)
    new = [_fig("learning", "head arcface: 200 iterations", 0.7, key="head arcface")]
    kept = merge_rows(old, new, "learning", partial=True)
    assert [f["name"] for f in kept] == ["arcface ms", "demo arcface",
                                         "head cosface: 60 iterations"]
    # a full run of the bench replaces every row of that bench and no other
    kept = merge_rows(old, new, "learning", partial=False)
    assert [f["name"] for f in kept] == ["arcface ms"]


def test_learning_partial_follows_the_selection(monkeypatch):
    for name in ("GLUONFR_BENCH_LEARNING_TABLES", "GLUONFR_BENCH_HEADS"):
        monkeypatch.delenv(name, raising=False)
    assert not learning.partial()
    monkeypatch.setenv("GLUONFR_BENCH_LEARNING_TABLES", "heads")
    assert learning.partial()
    monkeypatch.setenv("GLUONFR_BENCH_LEARNING_TABLES", ",".join(learning.TABLES))
    monkeypatch.setenv("GLUONFR_BENCH_HEADS", "arcface,cosface")
    assert learning.partial()
    monkeypatch.setenv("GLUONFR_BENCH_HEADS", ",".join((learning.UNTRAINED,) + learning.HEADS))
    assert not learning.partial()
