"""gluonfr-align on small identity trees: crops, landmarks, report, resuming after a kill."""
import json
import os
import signal
import subprocess
import sys
import time

import gluonfr  # noqa: F401
from gluonfr.data.align import norm_crop, read_landmarks
from gluonfr.detect.folder import JOURNAL, align_folder

import cv2
import numpy as np
import pytest
from conftest import REPO

PEOPLE = {"obama": ["obama_1.jpg", "obama_2.jpg", "obama_3.jpg"], "biden": ["biden_1.jpg"],
          "hopper": ["hopper_1.jpg"], "collins": ["collins_1.png"]}


def _small(path, long_side=360):
    img = cv2.imread(path)
    s = long_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def _tree(root, faces_dir, copies=1):
    """Raw photos per identity, plus a wall (no face), a broken file and a two-face photo."""
    for person, files in PEOPLE.items():
        os.makedirs(root / person, exist_ok=True)
        for name in files:
            img = _small(os.path.join(faces_dir, name))
            stem, ext = os.path.splitext(name)
            for c in range(copies):
                out = img if c == 0 else cv2.resize(img, None, fx=1 - 0.03 * c, fy=1 - 0.03 * c)
                cv2.imwrite(str(root / person / f"{stem}_{c}{ext}"), out)
    cv2.imwrite(str(root / "hopper" / "wall.jpg"), np.full((200, 300, 3), 90, np.uint8))
    (root / "biden" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    a = cv2.imread(os.path.join(faces_dir, "hopper_1.jpg"))
    b = cv2.resize(cv2.imread(os.path.join(faces_dir, "obama_1.jpg")), (160, 200))
    canvas = np.zeros((512, 700, 3), np.uint8)
    canvas[:, :512] = a
    canvas[:200, 530:690] = b
    cv2.imwrite(str(root / "hopper" / "with_friend.jpg"), canvas)


@pytest.fixture(scope="module")
def faces_dir(shared_dir):
    return os.path.join(shared_dir, "data", "real-faces")


def test_align_tree_crops_landmarks_and_report(faces_dir, face_detector, tmp_path):
    src, dst = tmp_path / "raw", tmp_path / "aligned"
    _tree(src, faces_dir)
    report = align_folder(str(src), str(dst), face_detector, num_workers=2, progress=False)
    assert report["total"] == 9 and report["aligned"] == 7 and report["resumed"] == 0
    assert report["no_face"] == ["hopper/wall.jpg"]
    assert report["unreadable"] == ["biden/broken.jpg"]
    (several,) = report["several_faces"]
    assert several["source"] == "hopper/with_friend.jpg" and several["faces"] == 2
    assert "kept the largest box" in several["why"]
    text = (dst / "report.txt").read_text()
    assert "hopper/wall.jpg" in text and "with_friend.jpg: 2 faces" in text
    table = read_landmarks(str(dst / "landmarks.json"))  # the pack_rec landmark format
    expected = {f"{p}/{os.path.splitext(n)[0]}_0{os.path.splitext(n)[1]}"
                for p, ns in PEOPLE.items() for n in ns} | {"hopper/with_friend.jpg"}
    assert set(table) == expected
    for rel, lmk in table.items():
        crop = cv2.imread(str(dst / (os.path.splitext(rel)[0] + ".jpg")))
        assert crop.shape == (112, 112, 3)
        expect = norm_crop(cv2.imread(str(src / rel)), lmk)
        assert np.abs(crop.astype(int) - expect.astype(int)).mean() < 3, rel  # JPEG only
    kept = json.loads((dst / "landmarks.json").read_text())["hopper/with_friend.jpg"]
    assert kept["box_xywh"][0] < 512  # hopper (the larger face), not the small one
    # a second run does nothing: every photo is in the journal, no crop is rewritten
    stamp = os.stat(dst / "obama" / "obama_1_0.jpg").st_mtime_ns
    again = align_folder(str(src), str(dst), face_detector, progress=False)
    assert again["resumed"] == 9 and again["aligned"] == 7
    assert os.stat(dst / "obama" / "obama_1_0.jpg").st_mtime_ns == stamp


def test_killed_run_resumes(faces_dir, face_detector, third_party_store, tmp_path):
    src, dst = tmp_path / "raw", tmp_path / "aligned"
    _tree(src, faces_dir, copies=6)  # 6 x 6 portraits + 3 extras
    total = 39
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "gluonfr.cli.align", str(src), str(dst), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    journal = dst / JOURNAL
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 4:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = len([ln for ln in journal.read_text().splitlines() if ln.strip()])
    assert 4 <= first < total
    assert not (dst / "report.json").exists()  # the report is only written by a finished run
    result = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((dst / "report.json").read_text())
    assert report["total"] == total and report["aligned"] == total - 2
    assert report["resumed"] >= first
    assert report["no_face"] == ["hopper/wall.jpg"]
    lines = [json.loads(ln) for ln in journal.read_text().splitlines() if ln.strip()]
    assert sorted({r["source"] for r in lines}) == sorted(r["source"] for r in lines)  # no redo
    assert len(lines) == total
    for person in PEOPLE:
        names = os.listdir(dst / person)
        assert not [n for n in names if n.startswith(".")]  # no temporaries left
        for n in names:
            assert cv2.imread(str(dst / person / n)).shape == (112, 112, 3)


def test_pack_rec_aligns_raw_photos_with_the_detector(faces_dir, face_detector, tmp_path):
    from gluonfr.data import FaceRecordDataset, pack_rec

    src = tmp_path / "raw"
    _tree(src, faces_dir)
    with pytest.warns(UserWarning, match="skipped 2 of 9"):
        info = pack_rec(str(src), str(tmp_path / "rec"), detector=face_detector)
    assert info["num_images"] == 7 and info["num_classes"] == 4
    assert sorted(info["skipped"]) == [(str(src / "biden" / "broken.jpg"),
                                        "unreadable or not an image"),
                                       (str(src / "hopper" / "wall.jpg"), "no face found")]
    ds = FaceRecordDataset(str(tmp_path / "rec"))
    # record 0 is the first photo of the first identity (biden): its detected, aligned face
    img, label = ds[0]
    crop = norm_crop(cv2.imread(str(src / "biden" / "biden_1_0.jpg")),
                     face_detector.detect(str(src / "biden" / "biden_1_0.jpg"))[0].landmarks)
    assert label == 0
    assert np.abs(img.asnumpy().astype(int) - crop[:, :, ::-1].astype(int)).mean() < 3
    with pytest.raises(ValueError, match="expected an aligned 112x112 crop"):
        pack_rec(str(src), str(tmp_path / "rec2"), detector=None)
