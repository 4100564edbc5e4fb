import json
import os

import gluonfr  # noqa: F401
from gluonfr.cli.verify import main as verify_main
from gluonfr.data.align import norm_crop
from gluonfr.data.image import read_image
from gluonfr.detect import NoFaceError
from gluonfr.embedder import FaceEmbedder, threshold_from_eval
from gluonfr.model_zoo import get_model

import cv2
import mxnet as mx
import numpy as np
import pytest


@pytest.fixture(scope="module")
def faces(shared_dir):
    folder = os.path.join(shared_dir, "data", "real-faces")
    with open(os.path.join(folder, "landmarks.json")) as f:
        table = json.load(f)
    return folder, table


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    mx.random.seed(3)
    net = get_model("mobilefacenet")
    path = str(tmp_path_factory.mktemp("params") / "mobilefacenet.params")
    net.save_parameters(path)
    return path


def _embedder(params_file, **kwargs):
    return FaceEmbedder("mobilefacenet", params=params_file, **kwargs)


def test_paths_rgb_and_bgr_arrays_give_the_same_unit_embeddings(faces, params_file):
    folder, table = faces
    name = "obama_1.jpg"
    lmk = table[name]["landmarks5"]
    path = os.path.join(folder, name)
    emb = _embedder(params_file)
    from_path = emb.embed(path, landmarks=lmk)
    rgb = read_image(path)
    bgr = cv2.imread(path)  # OpenCV's own reader, BGR
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])
    assert from_path.shape == (1, 128)
    np.testing.assert_allclose(np.linalg.norm(from_path, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb.embed(rgb, landmarks=lmk), from_path, atol=1e-6)
    np.testing.assert_allclose(emb.embed(bgr, color="bgr", landmarks=lmk), from_path, atol=1e-6)
    # the aligned crop is what the network sees: embedding it directly gives the same vector
    crop = norm_crop(rgb, lmk)
    np.testing.assert_allclose(emb.embed(crop), from_path, atol=1e-6)
    # the independent reference: flip-sum of two network outputs, then unit length
    x = mx.nd.array(crop.transpose(2, 0, 1)[None].astype(np.float32))
    raw = emb.net(x).asnumpy() + emb.net(x[:, :, :, ::-1]).asnumpy()
    np.testing.assert_allclose(from_path, raw / np.linalg.norm(raw), atol=1e-5)


def test_batches_equal_single_images_and_compare_is_cosine(faces, params_file):
    folder, table = faces
    names = ["obama_1.jpg", "obama_2.jpg", "biden_1.jpg", "collins_1.png"]
    paths = [os.path.join(folder, n) for n in names]
    lmks = [table[n]["landmarks5"] for n in names]
    emb = _embedder(params_file, batch_size=3)
    batch = emb.embed(paths, landmarks=lmks)
    singles = np.concatenate([emb.embed(p, landmarks=m) for p, m in zip(paths, lmks)])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    sim, same = emb.compare(paths[0], paths[2], landmarks_a=lmks[0], landmarks_b=lmks[2])
    assert sim == pytest.approx(float(batch[0] @ batch[2]), abs=1e-5)
    assert same == (sim >= emb.threshold)
    sim_self, same_self = emb.compare(paths[1], paths[1], landmarks_a=lmks[1],
                                      landmarks_b=lmks[1])
    assert sim_self == pytest.approx(1.0, abs=1e-5) and same_self


def test_onnx_backend_matches_mxnet(faces, params_file):
    folder, table = faces
    names = ["hopper_1.jpg", "obama_3.jpg"]
    paths = [os.path.join(folder, n) for n in names]
    lmks = [table[n]["landmarks5"] for n in names]
    ours = _embedder(params_file).embed(paths, landmarks=lmks)
    onnx = _embedder(params_file, backend="onnx").embed(paths, landmarks=lmks)
    np.testing.assert_allclose(onnx, ours, atol=1e-4)


def test_bad_input_is_named(tmp_path, params_file):
    emb = _embedder(params_file)
    with pytest.raises(ValueError, match="not an aligned 112x112 crop"):
        emb.embed(np.zeros((100, 80, 3), np.uint8), detect=False)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        emb.embed(str(bad))
    with pytest.raises(ValueError, match=r"expected shape \(1, 5, 2\)"):
        emb.embed(np.zeros((112, 112, 3), np.uint8), landmarks=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="color must be"):
        emb.embed(np.zeros((112, 112, 3), np.uint8), color="hsv")


def test_threshold_from_eval_converts_squared_l2(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"targets": {
        "agedb_30": {"flip": {"threshold": 1.2}},
        "lfw": {"noflip": {"threshold": 1.4}, "flip": {"threshold": 1.5}}}}))
    # unit vectors: |a-b|^2 = 2 - 2cos, so d = 1.5 is cos = 0.25
    assert threshold_from_eval(str(path)) == pytest.approx(0.25)
    assert threshold_from_eval(str(path), "agedb_30") == pytest.approx(0.4)
    with pytest.raises(ValueError, match="no target 'cplfw'"):
        threshold_from_eval(str(path), "cplfw")


def test_cli_decides_and_reports_bad_files(faces, params_file, tmp_path, capsys):
    folder, _ = faces
    lmk_file = os.path.join(folder, "landmarks.json")
    a = os.path.join(folder, "obama_1.jpg")
    code = verify_main([a, a, "--params", params_file, "--landmarks", lmk_file])
    out = capsys.readouterr().out
    assert code == 0 and "similarity 1.0000" in out and "SAME" in out
    code = verify_main([a, a, "--params", params_file, "--landmarks", lmk_file,
                        "--threshold", "1.01"])
    assert code == 1 and "DIFFERENT" in capsys.readouterr().out
    missing = str(tmp_path / "nope.jpg")
    assert verify_main([a, missing, "--params", params_file]) == 2
    assert "nope.jpg: no such image file" in capsys.readouterr().err


def test_whole_photos_are_detected_and_agree_with_the_landmark_path(faces, params_file,
                                                                    face_detector):
    folder, table = faces
    names = sorted(table)
    paths = [os.path.join(folder, n) for n in names]
    emb = _embedder(params_file, detector=face_detector)
    raw, sources = emb.embed(paths, return_faces=True)
    given = emb.embed(paths, landmarks=[table[n]["landmarks5"] for n in names])
    assert [i for i, _ in sources] == list(range(len(names)))
    for (_, face), name, a, b in zip(sources, names, raw, given):
        ref = np.asarray(table[name]["landmarks5"])
        err = np.abs(face.landmarks - ref).max()
        if err < 0.01:  # the recorded points (rounded to 0.01 px): the same embedding
            assert float(a @ b) > 0.9999, name
        assert float(a @ b) > 0.9, name  # a few pixels off at most: nearly the same vector
    # compare on raw photos equals the cosine of the two raw embeddings
    sim, same, crops = emb.compare(paths[0], paths[1], return_crops=True)
    assert sim == pytest.approx(float(raw[0] @ raw[1]), abs=1e-5)
    assert same == (sim >= emb.threshold)
    assert all(c.shape == (112, 112, 3) and c.dtype == np.uint8 for c in crops)
    # the crop compare used is the norm_crop of the detected landmarks
    expect = norm_crop(read_image(paths[0]), sources[0][1].landmarks)
    np.testing.assert_array_equal(crops[0], expect)


def test_all_faces_and_no_face(faces, params_file, face_detector, tmp_path):
    folder, _ = faces
    a = cv2.imread(os.path.join(folder, "hopper_1.jpg"))
    b = cv2.resize(cv2.imread(os.path.join(folder, "obama_1.jpg")), (256, 320))
    canvas = np.zeros((512, 768, 3), np.uint8)
    canvas[:, :512] = a
    canvas[:320, 512:] = b
    emb = _embedder(params_file, detector=face_detector)
    both, sources = emb.embed(canvas, color="bgr", faces="all", return_faces=True)
    assert both.shape == (2, 128) and [i for i, _ in sources] == [0, 0]
    one, (src,) = emb.embed(canvas, color="bgr", return_faces=True)
    assert src[1].area == max(f.area for _, f in sources)  # the most prominent face
    match = [k for k, (_, f) in enumerate(sources) if f.area == src[1].area][0]
    np.testing.assert_allclose(one[0], both[match], atol=1e-5)
    blank = tmp_path / "wall.jpg"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 90, np.uint8))
    with pytest.raises(NoFaceError, match="wall.jpg: no face found"):
        emb.compare(os.path.join(folder, "obama_1.jpg"), str(blank))


def test_cli_on_whole_photos_shows_the_compared_crops(faces, params_file, face_detector,
                                                      tmp_path, capsys):
    folder, table = faces
    a, b = (os.path.join(folder, n) for n in ("obama_1.jpg", "hopper_1.jpg"))
    out = tmp_path / "pair.jpg"
    code = verify_main([a, b, "--params", params_file, "--show", str(out)])
    text = capsys.readouterr().out
    assert code in (0, 1) and "similarity" in text and str(out) in text
    sheet = cv2.imread(str(out))[:, :, ::-1]
    assert sheet.shape[1] == 2 * 224 + 4 and sheet.shape[0] > 224
    expect = cv2.resize(norm_crop(read_image(a), table["obama_1.jpg"]["landmarks5"]),
                        (224, 224), interpolation=cv2.INTER_AREA)
    got = sheet[2:226, 2:226].astype(float)
    assert np.abs(got - expect).mean() < 8  # JPEG of the very crop that was compared
    sim_text = float(text.split()[1])
    sim, _ = _embedder(params_file, detector=face_detector).compare(a, b)
    assert sim_text == pytest.approx(sim, abs=1e-4)
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 90, np.uint8))
    assert verify_main([a, str(blank), "--params", params_file]) == 2
    assert "wall.png: no face found" in capsys.readouterr().err


def test_return_norm_gives_the_raw_feature_norm_as_quality(faces, params_file):
    folder, table = faces
    names = ["obama_1.jpg", "biden_1.jpg"]
    paths = [os.path.join(folder, n) for n in names]
    lmks = [table[n]["landmarks5"] for n in names]
    for flip in (True, False):
        emb = _embedder(params_file, flip=flip)
        unit, norms = emb.embed(paths, landmarks=lmks, return_norm=True)
        np.testing.assert_allclose(unit, emb.embed(paths, landmarks=lmks), atol=1e-6)
        assert norms.shape == (2,) and norms.dtype == np.float32
        crops = np.stack([norm_crop(read_image(p), m) for p, m in zip(paths, lmks)])
        x = mx.nd.array(crops.transpose(0, 3, 1, 2).astype(np.float32))
        raw = np.linalg.norm(emb.net(x).asnumpy(), axis=1)
        if flip:  # the mean of the image's and its mirror's feature norms
            raw = 0.5 * (raw + np.linalg.norm(emb.net(x[:, :, :, ::-1]).asnumpy(), axis=1))
        np.testing.assert_allclose(norms, raw, rtol=1e-5)
    unit, norms, sources = emb.embed(paths, landmarks=lmks, return_norm=True,
                                     return_faces=True)
    assert len(sources) == 2 and norms.shape == (2,)
