"""Reports: the model-zoo table, JSON (NaN-free, atomic) and the ROC figure."""
import json

from gluonfr.metrics import format_table, plot_roc, results_to_json, write_json

import numpy as np
import pytest


def result(acc, std, **extra):
    return {"accuracy": acc, "accuracy_std": std, **extra}


def test_table_has_the_model_zoo_shape():
    results = {"lfw": result(0.995667, 0.003432, flip=True,
                             noflip=result(0.9955, 0.0033372)),
               "cfp_ff": result(0.9955714, 0.0027443, flip=True,
                                noflip=result(0.945, 0.0377))}
    assert format_table(results).splitlines() == [
        "+--------------+--------------------------+--------------------------+",
        "| Flip         | False                    | True                     |",
        "+==============+==========================+==========================+",
        "| lfw:         | 0.995500+-0.003337       | 0.995667+-0.003432       |",
        "+--------------+--------------------------+--------------------------+",
        "| cfp_ff:      | 0.945000+-0.037700       | 0.995571+-0.002744       |",
        "+--------------+--------------------------+--------------------------+",
    ]
    plain = format_table({"lfw": result(0.5, 0.0, flip=False)}).splitlines()
    assert plain[1].split("|")[1:-1] == [" Flip         ", " False                    "]


def test_json_is_plain_and_nan_free(tmp_path):
    res = result(0.9, 0.01, flip=True, auc=float("nan"), tpr=np.array([0.5, 1.0]),
                 fold_accuracy=np.array([0.9, 0.9], dtype=np.float32), num_pairs=np.int64(6),
                 tar_at_far={1e-3: 0.5}, noflip=result(0.8, 0.02, flip=False))
    obj = results_to_json({"lfw": res}, curves=False, model="mobilefacenet")
    path = write_json(obj, tmp_path / "out" / "res.json")
    back = json.loads(open(path).read())
    assert back["model"] == "mobilefacenet"
    flip = back["targets"]["lfw"]["flip"]
    assert flip["auc"] is None and "tpr" not in flip and flip["num_pairs"] == 6
    assert flip["fold_accuracy"] == pytest.approx([0.9, 0.9]) and flip["tar_at_far"] == {
        "0.001": 0.5}
    assert back["targets"]["lfw"]["noflip"]["accuracy"] == 0.8
    # A failed write leaves neither a file nor a temporary behind.
    with pytest.raises(TypeError):
        write_json({"bad": object()}, tmp_path / "bad.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_plot_roc_writes_the_format_of_the_extension(tmp_path):
    res = result(0.9, 0.01, auc=0.95, num_diff=10, roc_fpr=np.array([0, 0, 0.1, 1.0]),
                 roc_tpr=np.array([0, 0.5, 0.9, 1.0]))
    png = plot_roc({"lfw": res, "empty": result(0.5, 0.0)}, tmp_path / "roc.png")
    pdf = plot_roc({"lfw": res}, tmp_path / "roc.pdf")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(pdf, "rb").read(5) == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.pdf", "roc.png"]
