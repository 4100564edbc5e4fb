"""The demo's plumbing on a tiny face set and backbone (the real demo is ``make demo``)."""
import json
import os

import gluonfr  # noqa: F401
from gluonfr.engine.demo import ensure_demo_data, run_demo

TINY = dict(num_identities=8, images_per_identity=4, num_pairs=20, seed=2, image_size=112)


def test_demo_reports_untrained_and_trained_accuracy_with_its_outputs(tmp_path):
    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    lines = []
    res = run_demo(data_dir=data, out_dir=out, progress=False, print_fn=lines.append, data=TINY,
                   model="test_engine:tiny_backbone", input_size=112, max_iters=4, batch_size=8,
                   loss_warmup_iters=2, warmup_iters=1, margin_s=16.0)
    text = "\n".join(lines)
    assert "generated 32 training faces of 8 identities" in text
    u, t = res["untrained"], res["trained"]
    for acc in (u["flip"], u["noflip"], t["flip"], t["noflip"]):
        assert 0.0 <= acc <= 1.0
    assert f"{u['noflip']:.4f}" in text and f"{t['flip']:.4f}" in text
    assert os.path.getsize(res["roc"]) > 1000 and res["roc"] in text
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(res["tensorboard"]))
    assert res["iterations"] == 4 and os.path.isfile(res["checkpoint"])
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["trained"] == t
    # the second run reuses the generated faces and starts training from scratch again
    lines.clear()
    res2 = run_demo(data_dir=data, out_dir=out, progress=False, print_fn=lines.append,
                    data=TINY, model="test_engine:tiny_backbone", input_size=112, max_iters=4,
                    batch_size=8, loss_warmup_iters=2, warmup_iters=1, margin_s=16.0)
    assert lines[0].startswith("using 32 training faces")
    assert res2["trained"] == t  # same seed, same data, fresh start: same result
    assert ensure_demo_data(data, **TINY)[1] is False
    assert ensure_demo_data(data, **dict(TINY, seed=3))[1] is True  # other params: rebuilt
