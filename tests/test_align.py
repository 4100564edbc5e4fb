import json
import math
import os

from gluonfr.data.align import (
    ARCFACE_TEMPLATE,
    estimate_norm,
    norm_crop,
    template,
    transform_points,
    umeyama,
)

import cv2
import numpy as np
import pytest


def similarity(scale, angle_deg, tx, ty):
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


def linear_lstsq_similarity(src, dst):
    """Independent reference: solve x' = a x - b y + tx, y' = b x + a y + ty by lstsq."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


@pytest.mark.compat
def test_umeyama_recovers_a_known_similarity_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (5, 2))
    m = similarity(2.7, -33.0, 41.0, -17.5)
    dst = transform_points(m, src)
    np.testing.assert_allclose(umeyama(src, dst), m, atol=1e-9)


def test_umeyama_is_the_least_squares_similarity_on_noisy_points():
    rng = np.random.default_rng(1)
    for _ in range(5):
        src = rng.uniform(0, 300, (5, 2))
        dst = transform_points(similarity(rng.uniform(0.2, 3), rng.uniform(-60, 60),
                                          *rng.uniform(-50, 50, 2)), src)
        dst += rng.normal(0, 4, dst.shape)
        np.testing.assert_allclose(umeyama(src, dst), linear_lstsq_similarity(src, dst),
                                   atol=1e-8)


def test_umeyama_never_reflects():
    src = ARCFACE_TEMPLATE.copy()
    mirrored = src * [-1, 1]  # best orthogonal fit would be a reflection
    m = umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_template_sizes_follow_insightface():
    np.testing.assert_allclose(template(112), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE * 2)
    # 128: scale by 128/128 and shift x by 8
    np.testing.assert_allclose(template(128), ARCFACE_TEMPLATE + [8, 0])


def test_norm_crop_undoes_a_known_warp():
    # a textured 112x112 "aligned face" is placed in a large photo by a known similarity;
    # cropping with the moved template points must give the original back
    rng = np.random.default_rng(2)
    face = cv2.GaussianBlur(rng.integers(0, 256, (112, 112, 3)).astype(np.uint8), (0, 0), 2.5)
    face = cv2.normalize(face, None, 0, 255, cv2.NORM_MINMAX)
    m = similarity(2.4, 21.0, 180.0, 95.0)
    photo = cv2.warpAffine(face, m, (520, 480), flags=cv2.INTER_CUBIC)
    lmk = transform_points(m, ARCFACE_TEMPLATE)
    crop = norm_crop(photo, lmk)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    inner = (slice(8, 104), slice(8, 104))
    diff = np.abs(crop[inner].astype(int) - face[inner].astype(int))
    assert diff.mean() < 3.0, diff.mean()
    # channel order is kept: a red-only image stays red-only
    red = np.zeros_like(photo)
    red[..., 2] = 200
    out = norm_crop(red, lmk)
    assert out[..., 2].mean() > 150 and out[..., :2].max() == 0


def test_norm_crop_rejects_bad_input():
    img = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        norm_crop(img, np.zeros(10))
    with pytest.raises(ValueError, match="uint8"):
        norm_crop(img.astype(np.float32), ARCFACE_TEMPLATE)
    with pytest.raises(ValueError, match="coincide"):
        norm_crop(img, np.ones((5, 2)))


def test_real_photos_land_on_the_template(shared_dir):
    folder = os.path.join(shared_dir, "data", "real-faces")
    with open(os.path.join(folder, "landmarks.json")) as f:
        table = json.load(f)
    assert len(table) >= 6
    for name, entry in table.items():
        img = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        assert img is not None, name
        lmk = np.array(entry["landmarks5"], dtype=np.float64)
        m = estimate_norm(lmk)
        np.testing.assert_allclose(m, linear_lstsq_similarity(lmk, ARCFACE_TEMPLATE), atol=1e-8)
        mapped = transform_points(m, lmk)
        err = np.linalg.norm(mapped - ARCFACE_TEMPLATE, axis=1)
        # real faces are not the template; a good fit leaves a few pixels per point
        assert err.mean() < 4.5 and err.max() < 6.0, (name, err)
        crop = norm_crop(img, lmk)
        assert crop.shape == (112, 112, 3)
        # the face lies inside every photo, so the crop is (almost) free of black fill
        assert (crop.max(axis=2) == 0).mean() < 0.05, name


def test_one_landmark_lookup_rule_exact_then_relative_then_file_name(tmp_path):
    from gluonfr.data import DataFormatError
    from gluonfr.data.align import lookup_landmarks, read_landmarks

    pts = {k: np.arange(10, dtype=float).reshape(5, 2) + k for k in range(4)}
    lines = [f"{name} " + " ".join(str(v) for v in pts[k].ravel())
             for k, name in enumerate(["./photos/anna/1.jpg", "anna\\1.jpg", "1.jpg", "2.jpg"])]
    path = tmp_path / "lmk.txt"
    path.write_text("\n".join(lines) + "\n")
    table = read_landmarks(path)
    assert sorted(table) == ["1.jpg", "2.jpg", "anna/1.jpg", "photos/anna/1.jpg"]  # normalised
    np.testing.assert_array_equal(lookup_landmarks(table, "photos/anna/1.jpg"), pts[0])  # exact
    np.testing.assert_array_equal(lookup_landmarks(table, "/data/photos/anna/1.jpg",
                                                   root="/data/photos"), pts[1])  # relative
    np.testing.assert_array_equal(lookup_landmarks(table, "/elsewhere/1.jpg"), pts[2])  # name
    np.testing.assert_array_equal(lookup_landmarks(table, "bob/2.jpg", root="."), pts[3])
    assert lookup_landmarks(table, "bob/3.jpg", root="bob") is None
    # raw tables (a JSON dict as loaded) take the same rule and the same checks
    raw = {"a.jpg": {"landmarks5": pts[1].tolist()}, "b.jpg": [1.0] * 9}
    np.testing.assert_array_equal(lookup_landmarks(raw, "x/a.jpg"), pts[1])
    with pytest.raises(DataFormatError, match="landmarks of 'b.jpg': expected 5"):
        lookup_landmarks(raw, "b.jpg")
