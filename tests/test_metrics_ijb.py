"""IJB protocol functions against plain-loop references and hand-computed cases."""
import math

from gluonfr.metrics import ijb
from gluonfr.metrics.ijb import (
    DEFAULT_MODE,
    identification_1n,
    image_features,
    parse_modes,
    template_features,
    verification_11,
    verification_from_scores,
)
from gluonfr.metrics.ijb import TestMode as Mode  # (a Test* name would be collected)

import numpy as np
import pytest
from sklearn.metrics import auc, roc_curve


# -- independent references: plain loops, as the protocol is described ----------------------
def loop_template_features(feats, templates, medias):
    ids = sorted(set(templates.tolist()))
    out = []
    for t in ids:
        in_t = [i for i in range(len(templates)) if templates[i] == t]
        total = np.zeros(feats.shape[1])
        for m in sorted({int(medias[i]) for i in in_t}):
            rows = [feats[i].astype(np.float64) for i in in_t if medias[i] == m]
            total += sum(rows) / len(rows)
        norm = math.sqrt(float(total @ total))
        out.append(total / norm if norm else total)
    return np.array(ids), np.array(out)


def loop_tar(labels, scores, far, strict):
    """ROC from sklearn (an independent implementation), then each rule as a loop."""
    fpr, tpr, _ = roc_curve(labels, scores)
    if strict:
        return max(t for f, t in zip(fpr, tpr) if f <= far)
    best = None
    for f, t in zip(fpr, tpr):
        key = (abs(f - far), -t)
        if best is None or key < best[0]:
            best = (key, t)
    return best[1]


def loop_identification(ids, feats, g_ids, g_subj, p_ids, p_subj, fpir):
    row = {t: i for i, t in enumerate(ids.tolist())}
    ranks, mate_scores, nonmated = [], [], []
    for p, s in zip(p_ids.tolist(), p_subj.tolist()):
        by_subject = {}
        for g, gs in zip(g_ids.tolist(), g_subj.tolist()):
            score = float(feats[row[p]] @ feats[row[g]])
            by_subject[gs] = max(by_subject.get(gs, -9.0), score)
        if s in by_subject:
            mate = by_subject[s]
            ranks.append(1 + sum(v > mate for v in by_subject.values()))
            mate_scores.append(mate)
        else:
            nonmated.append(max(by_subject.values()))
    nonmated.sort(reverse=True)
    thr = nonmated[max(int(len(nonmated) * fpir) - 1, 0)]
    tpir = sum(r == 1 and m > thr for r, m in zip(ranks, mate_scores)) / len(ranks)
    top5 = sum(r <= 5 for r in ranks) / len(ranks)
    return tpir, top5


@pytest.fixture
def random_set():
    rng = np.random.default_rng(3)
    n, d = 300, 16
    templates = rng.integers(100, 140, n)
    medias = rng.integers(0, 7, n) + 10 * (templates % 3)  # media ids shared across templates
    feats = rng.standard_normal((n, d)).astype(np.float32)
    return feats, templates, medias


def test_template_features_match_plain_loop(random_set):
    feats, templates, medias = random_set
    ids, pooled = template_features(feats, templates, medias)
    ref_ids, ref = loop_template_features(feats, templates, medias)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(pooled, ref, rtol=1e-5, atol=1e-6)
    assert pooled.dtype == np.float32


def test_template_features_blocks_split_groups(random_set, monkeypatch):
    # blocks of 7 rows cut media and templates in two: the pieces must still add up
    feats, templates, medias = random_set
    whole = template_features(feats, templates, medias)[1]
    monkeypatch.setattr(ijb, "_POOL_ROWS", 7)
    np.testing.assert_allclose(template_features(feats, templates, medias)[1], whole,
                               rtol=1e-6, atol=1e-7)


def test_three_templates_by_hand():
    # template 1: media 5 = {(1,0), (3,0)} -> mean (2,0); media 6 = {(0,2)} -> sum (2,2)
    # template 2: one image (0,-3); template 3: one image (3,4)
    feats = np.array([[1, 0], [3, 0], [0, 2], [0, -3], [3, 4]], dtype=np.float32)
    templates = np.array([1, 1, 1, 2, 3])
    medias = np.array([5, 5, 6, 7, 8])
    ids, pooled = template_features(feats, templates, medias)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(pooled, [[s, s], [0, -1], [0.6, 0.8]], rtol=1e-6)
    # pairs (1,2): -s genuine; (1,3): 1.4 s = 0.98995 impostor; (2,3): -0.8 genuine
    res = verification_11(ids, pooled, [1, 1, 2], [2, 3, 3], [1, 0, 1], fars=(0.0, 0.4, 1.0))
    np.testing.assert_allclose(res["scores"], [-s, 1.4 * s, -0.8], rtol=1e-6)
    # descending scores: 0.99 impostor, -0.71 genuine, -0.8 genuine -> ROC (0,0) (1,0) (1,1)
    np.testing.assert_allclose(res["roc_fpr"], [0, 1, 1])
    np.testing.assert_allclose(res["roc_tpr"], [0, 0, 1])
    # FAR 0.4: nearest point is FAR 0 (distance 0.4 < 0.6) -> TAR 0; strict: FAR 0 -> 0
    assert res["tar_at_far"][0.4] == 0.0 and res["tar_at_far_strict"][0.4] == 0.0
    # FAR 1.0: nearest is FAR 1 with the highest TAR (1); strict likewise
    assert res["tar_at_far"][1.0] == 1.0 and res["tar_at_far_strict"][1.0] == 1.0
    assert res["auc"] == 0.0
    assert (res["num_genuine"], res["num_impostor"]) == (2, 1)


def test_nearest_and_strict_rules_differ_by_hand():
    # 2 genuine, 4 impostor; descending scores: g .9, i .8, g .7, i .6, i .5, i .4
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 0, 1, 0, 0, 0])
    res = verification_from_scores(scores, labels, fars=(0.2, 0.3))
    # ROC points: (0,0) (0,.5) (.25,.5) (.25,1) (1,1)
    np.testing.assert_allclose(res["roc_fpr"], [0, 0, .25, .25, 1])
    np.testing.assert_allclose(res["roc_tpr"], [0, .5, .5, 1, 1])
    # FAR 0.2: nearest FAR is 0.25 (distance .05) with the best TAR there, 1.0; strict: 0.5
    assert res["tar_at_far"][0.2] == 1.0
    assert res["tar_at_far_strict"][0.2] == 0.5
    assert res["threshold_at_far_strict"][0.2] == 0.9
    # FAR 0.3: both 1.0
    assert res["tar_at_far"][0.3] == res["tar_at_far_strict"][0.3] == 1.0
    assert res["auc"] == pytest.approx(0.875)


def test_verification_matches_loop_rules(random_set):
    rng = np.random.default_rng(5)
    feats, templates, medias = random_set
    ids, pooled = template_features(feats, templates, medias)
    t1 = rng.choice(ids, 3000)
    t2 = rng.choice(ids, 3000)
    labels = (rng.random(3000) < 0.2).astype(np.int8)
    res = verification_11(ids, pooled, t1, t2, labels, fars=(1e-3, 1e-2, 0.05, 0.1, 0.5))
    row = {t: i for i, t in enumerate(ids.tolist())}
    ref_scores = np.array([pooled[row[a]].astype(np.float64) @ pooled[row[b]]
                           for a, b in zip(t1.tolist(), t2.tolist())])
    np.testing.assert_allclose(res["scores"], ref_scores, rtol=1e-5, atol=1e-6)
    for far in (1e-3, 1e-2, 0.05, 0.1, 0.5):
        assert res["tar_at_far"][far] == loop_tar(labels, res["scores"], far, strict=False)
        assert res["tar_at_far_strict"][far] == loop_tar(labels, res["scores"], far, strict=True)
    fpr, tpr, _ = roc_curve(labels, res["scores"])
    np.testing.assert_allclose(res["roc_fpr"], fpr)
    np.testing.assert_allclose(res["roc_tpr"], tpr)
    assert res["auc"] == pytest.approx(float(auc(fpr, tpr)))


@pytest.mark.parametrize("path", ["dense", "gathered"])
def test_pair_scores_both_paths_in_small_tiles(random_set, monkeypatch, path):
    # tiles of 7 templates; every tile as one matrix product, or every pair gathered in
    # 64-pair blocks over several threads: both give the plain dot products
    feats, templates, medias = random_set
    ids, pooled = template_features(feats, templates, medias)
    rng = np.random.default_rng(1)
    t1, t2 = rng.choice(ids, 1000), rng.choice(ids, 1000)
    row = {t: i for i, t in enumerate(ids.tolist())}
    ref = np.array([pooled[row[a]].astype(np.float64) @ pooled[row[b]]
                    for a, b in zip(t1.tolist(), t2.tolist())])
    monkeypatch.setattr(ijb, "_TILE_ROWS", 7)
    monkeypatch.setattr(ijb, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(ijb, "_DENSE_FACTOR", 10 ** 9 if path == "dense" else 0)
    np.testing.assert_allclose(ijb.pair_scores(ids, pooled, t1, t2), ref, rtol=1e-5,
                               atol=1e-6)


def test_unknown_template_in_pairs_is_named(random_set):
    feats, templates, medias = random_set
    ids, pooled = template_features(feats, templates, medias)
    with pytest.raises(ValueError, match=r"t2: template 99999 \(entry 1\)"):
        ijb.pair_scores(ids, pooled, [ids[0], ids[1]], [ids[0], 99999])


def test_identification_matches_loop():
    rng = np.random.default_rng(7)
    ids = np.arange(1, 61)
    feats = rng.standard_normal((60, 8)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    # gallery: templates 1..20, subjects 0..14 (some subjects with two templates)
    g_ids, g_subj = ids[:20], np.r_[np.arange(15), np.arange(5)]
    # probes: templates 21..60, subjects 0..24 (15..24 are not in the gallery)
    p_ids, p_subj = ids[20:], rng.integers(0, 25, 40)
    res = identification_1n(ids, feats, {"G1": (g_ids, g_subj)}, (p_ids, p_subj),
                            fpirs=(0.1, 0.5))
    for fpir in (0.1, 0.5):
        tpir, top5 = loop_identification(ids, feats, g_ids, g_subj, p_ids, p_subj, fpir)
        assert res["galleries"]["G1"]["tpir_at_fpir"][fpir] == pytest.approx(tpir)
        assert res["galleries"]["G1"]["cmc"][5] == pytest.approx(top5)
    assert res["mean"]["cmc"] == res["galleries"]["G1"]["cmc"]


def test_identification_three_templates_by_hand():
    # gallery: template 1 (subject 10) at (1,0), template 2 (subject 20) at (0,1)
    # probes: template 3 (subject 10) at (.6,.8): scores .6 / .8 -> mate at rank 2;
    #         template 4 (subject 30, non-mated) at (.8,.6): best .8
    ids = np.array([1, 2, 3, 4])
    feats = np.array([[1, 0], [0, 1], [.6, .8], [.8, .6]], dtype=np.float32)
    g1 = (np.array([1, 2]), np.array([10, 20]))
    g2 = (np.array([1]), np.array([10]))
    res = identification_1n(ids, feats, {"G1": g1, "G2": g2},
                            (np.array([3, 4]), np.array([10, 30])), ranks=(1, 2), fpirs=(0.5,))
    one, two = res["galleries"]["G1"], res["galleries"]["G2"]
    assert one["cmc"] == {1: 0.0, 2: 1.0}
    assert one["tpir_at_fpir"][0.5] == 0.0  # rank 2: never identified
    # G2: probe 3 mate at rank 1 with .6; non-mated best .8 -> threshold .8 -> TPIR 0
    assert two["cmc"] == {1: 1.0, 2: 1.0}
    assert two["threshold_at_fpir"][0.5] == pytest.approx(0.8)
    assert two["tpir_at_fpir"][0.5] == 0.0
    assert res["mean"]["cmc"] == {1: 0.5, 2: 1.0}


def test_image_features_modes():
    emb = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    flip = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    face = np.array([0.5, 2.0])
    np.testing.assert_allclose(image_features(emb, flip, face, DEFAULT_MODE),
                               [[2.0, 2.0], [2.0, 2.0]])
    np.testing.assert_allclose(image_features(emb, flip, face, "flip=none,faceness=off"), emb)
    np.testing.assert_allclose(image_features(emb, flip, face, "flip=none,norm=on"),
                               [[0.3, 0.4], [2.0, 0.0]], rtol=1e-6)
    cat = image_features(emb, flip, face, "flip=concat,norm=on,faceness=off")
    np.testing.assert_allclose(cat[0], np.array([3, 4, 1, 0]) / math.sqrt(26), rtol=1e-6)
    assert DEFAULT_MODE.name == "flip=sum,norm=off,faceness=on"
    assert Mode.parse(DEFAULT_MODE.name) == DEFAULT_MODE
    assert len(parse_modes("all")) == 12
    assert parse_modes("default;flip=none") == [DEFAULT_MODE, Mode("none", False, True)]
    with pytest.raises(ValueError, match="flip must be one of"):
        Mode.parse("flip=max")
    with pytest.raises(ValueError, match="norm=on"):
        Mode.parse("normalise")
