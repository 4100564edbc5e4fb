"""gluonfr.detect.FaceDetector on the real photos, against their recorded landmarks."""
import hashlib
import json
import os

import gluonfr  # noqa: F401
from gluonfr.data.align import ARCFACE_TEMPLATE, estimate_norm, transform_points
from gluonfr.detect import FaceDetector, pick_face
from gluonfr.model_zoo import model_store

import cv2
import numpy as np
import pytest
from conftest import SHARED

YUNET = "face_detection_yunet_2023mar.onnx"


@pytest.fixture(scope="module")
def faces(shared_dir):
    folder = os.path.join(shared_dir, "data", "real-faces")
    with open(os.path.join(folder, "landmarks.json")) as f:
        return folder, json.load(f)


@pytest.fixture(scope="module")
def detector(face_detector):
    return face_detector


def _iod_error(found, ref):
    ref = np.asarray(ref)
    return np.linalg.norm(np.asarray(found) - ref, axis=1).max() / np.linalg.norm(ref[0] - ref[1])


def test_store_fetches_the_detector_from_the_mirror_and_checks_its_sha1(shared_dir, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("GLUONFR_THIRD_PARTY_URL", os.path.join(SHARED, "data", "models"))
    path = model_store.get_third_party_file(YUNET, root=str(tmp_path / "cache"))
    with open(path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    assert digest == model_store._third_party[YUNET][0]
    assert os.path.dirname(path) == str(tmp_path / "cache")
    # a mirror holding other bytes under the name: refused, nothing left in the cache
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / YUNET).write_bytes(b"not the model")
    monkeypatch.setenv("GLUONFR_THIRD_PARTY_URL", str(bad))
    with pytest.raises(model_store.ChecksumError, match="GLUONFR_THIRD_PARTY_URL"):
        model_store.get_third_party_file(YUNET, root=str(tmp_path / "cache2"))
    assert os.listdir(tmp_path / "cache2") == []
    with pytest.raises(ValueError, match="not a known third-party file"):
        model_store.get_third_party_file("yolo.onnx")


def test_one_face_per_portrait_with_landmarks_within_5_percent_of_the_eye_distance(
        detector, faces):
    folder, table = faces
    names = sorted(table)
    found = detector.detect([os.path.join(folder, n) for n in names])
    for name, dets in zip(names, found):
        assert len(dets) == 1, name
        face = dets[0]
        assert face.landmarks.shape == (5, 2) and face.box.shape == (4,)
        assert 0.6 <= face.score <= 1.0
        assert _iod_error(face.landmarks, table[name]["landmarks5"]) < 0.05, name
        # the box holds the landmarks
        x, y, w, h = face.box
        assert (face.landmarks[:, 0] > x).all() and (face.landmarks[:, 0] < x + w).all()
        assert (face.landmarks[:, 1] > y).all() and (face.landmarks[:, 1] < y + h).all()


def test_landmarks_come_in_the_arcface_template_order(detector, faces):
    folder, _ = faces
    image = cv2.imread(os.path.join(folder, "hopper_1.jpg"))
    lmk = detector.detect(image)[0].landmarks
    # as seen in the image: eye 0 left of eye 1, mouth 3 left of mouth 4, eyes above the mouth
    assert lmk[0, 0] < lmk[1, 0] and lmk[3, 0] < lmk[4, 0]
    assert lmk[:2, 1].max() < lmk[2, 1] < lmk[3:, 1].min()
    # the template itself, mapped back into the photo, lands on the detected points
    m = estimate_norm(lmk)
    assert np.abs(transform_points(m, lmk) - ARCFACE_TEMPLATE).max() < 4.0
    # the mirrored photo: its image-left eye is the original's image-right eye, mirrored
    width = image.shape[1]
    mirrored = detector.detect(image[:, ::-1].copy())[0].landmarks
    swap = [1, 0, 2, 4, 3]
    expect = np.stack([width - 1 - lmk[swap, 0], lmk[swap, 1]], axis=1)
    assert _iod_error(mirrored, expect) < 0.05


def test_paths_bgr_rgb_gray_and_bytes_agree(detector, faces):
    folder, _ = faces
    path = os.path.join(folder, "obama_1.jpg")
    bgr = cv2.imread(path)
    ref = detector.detect(path)[0]
    for face in (detector.detect(bgr)[0],
                 detector.detect(bgr[:, :, ::-1].copy(), color="rgb")[0],
                 detector.detect(open(path, "rb").read())[0]):
        np.testing.assert_allclose(face.landmarks, ref.landmarks, atol=1e-3)
        assert face.score == pytest.approx(ref.score, abs=1e-5)
    gray = detector.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert len(gray) == 1 and _iod_error(gray[0].landmarks, ref.landmarks) < 0.1


def test_big_photos_are_scaled_down_and_mapped_back(detector, faces):
    folder, table = faces
    small = cv2.imread(os.path.join(folder, "hopper_1.jpg"))  # 512x512
    big = cv2.resize(small, (2048, 1600), interpolation=cv2.INTER_CUBIC)
    scaled = detector.detect(big)[0]  # max_size 1280: detected at 1280x1000
    # the mapping back is exact: the same as detecting the shrunk photo and scaling by hand
    shrunk = cv2.resize(big, (1280, 1000), interpolation=cv2.INTER_AREA)
    by_hand = FaceDetector(detector.model, max_size=None).detect(shrunk)[0]
    factor = np.array([2048 / 1280, 1600 / 1000])
    np.testing.assert_allclose(scaled.landmarks, by_hand.landmarks * factor, rtol=1e-5)
    np.testing.assert_allclose(scaled.box, by_hand.box * np.tile(factor, 2), rtol=1e-5)
    # and it is the face of the original photo (YuNet's points move by ~0.1 eye distances
    # with the face's scale, hence the loose bound)
    ref = np.asarray(table["hopper_1.jpg"]["landmarks5"]) * np.array([4.0, 3.125])
    assert _iod_error(scaled.landmarks, ref) < 0.25
    assert FaceDetector(detector.model, max_size=None).detect(big)  # full size works too


def test_thresholds_empty_images_and_picking(detector, faces):
    folder, table = faces
    path = os.path.join(folder, "collins_1.png")  # face box ~90x113
    assert len(detector.detect(path)) == 1
    assert FaceDetector(detector.model, min_size=120).detect(path) == []
    assert FaceDetector(detector.model, score_threshold=0.99).detect(path) == []
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    # two portraits side by side: both found, sorted by score; the larger one is picked
    a = cv2.imread(os.path.join(folder, "hopper_1.jpg"))
    b = cv2.resize(cv2.imread(os.path.join(folder, "obama_1.jpg")), (256, 320))
    canvas = np.zeros((512, 512 + 256, 3), np.uint8)
    canvas[:, :512] = a
    canvas[:320, 512:] = b
    found = detector.detect(canvas)
    assert len(found) == 2
    assert found[0].score >= found[1].score
    largest = found[pick_face(found, "largest")]
    assert largest.box[0] < 512  # hopper's face is the bigger one
    assert largest.area == max(f.area for f in found)


def test_bad_inputs_name_what_is_wrong(detector, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        detector.detect(str(tmp_path / "nope.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.jpg"):
        detector.detect([str(tmp_path / "bad.jpg")])
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="color"):
        detector.detect(np.zeros((10, 10, 3), np.uint8), color="hsv")
    with pytest.raises(ValueError, match="not a YuNet model"):
        FaceDetector(str(tmp_path / "bad.jpg"))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        FaceDetector(str(tmp_path / "missing.onnx"))
