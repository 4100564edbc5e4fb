"""Verification .bin: pack_bin -> load_bin, Python-2 pickles, numpy elements, refusal of code."""
import os
import pickle
import struct

import gluonfr  # noqa: F401
from gluonfr.data import DataFormatError, load_bin, pack_bin

import cv2
import mxnet as mx
import numpy as np
import pytest


def smooth(rng, h=112, w=112):
    small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def png_bytes(rgb):
    return cv2.imencode(".png", rgb[:, :, ::-1])[1].tobytes()


def py2_pickle(bins, issame):
    """Hand-assemble what Python 2's cPickle.dump((bins, issame), f, 2) writes: py2 ``str``
    elements are SHORT_BINSTRING / BINSTRING opcodes, which Python 3 never emits for bytes."""
    out = [b"\x80\x02", b"]", b"("]  # PROTO 2, EMPTY_LIST, MARK
    for data in bins:
        if len(data) < 256:
            out.append(b"U" + bytes([len(data)]) + data)
        else:
            out.append(b"T" + struct.pack("<i", len(data)) + data)
    out += [b"e", b"]", b"("]  # APPENDS, EMPTY_LIST, MARK
    out += [b"\x88" if s else b"\x89" for s in issame]  # NEWTRUE / NEWFALSE
    out += [b"e", b"\x86", b"."]  # APPENDS, TUPLE2, STOP
    return b"".join(out)


@pytest.mark.compat
def test_pack_bin_load_bin_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [smooth(rng) for _ in range(6)]
    path_img = tmp_path / "a.png"
    cv2.imwrite(str(path_img), imgs[4][:, :, ::-1])
    pairs = [(imgs[0], imgs[1], True),                    # arrays (JPEG-encoded)
             (png_bytes(imgs[2]), png_bytes(imgs[3]), False),  # encoded bytes, kept as is
             (str(path_img), mx.nd.array(imgs[5], dtype=np.uint8), 1)]  # a path and an NDArray
    out = tmp_path / "v.bin"
    assert pack_bin(pairs, str(out), quality=100) == 3
    images, issame = load_bin(str(out))
    assert isinstance(images, mx.nd.NDArray) and images.shape == (6, 112, 112, 3)
    assert images.dtype == np.uint8
    assert issame.dtype == bool and issame.tolist() == [True, False, True]
    got = images.asnumpy()
    order = [0, 1, 2, 3, 4, 5]
    for i, k in enumerate(order):
        tol = 0 if i in (2, 3, 4) else 3  # PNG is lossless, arrays went through JPEG q100
        assert np.abs(got[i].astype(int) - imgs[k].astype(int)).mean() <= tol
    # the file is insightface's format: a plain (list of bytes, list of bool) pickle
    with open(out, "rb") as f:
        bins, flags = pickle.load(f)
    assert isinstance(bins, list) and len(bins) == 6 and all(isinstance(b, bytes) for b in bins)
    assert bins[2] == png_bytes(imgs[2]) and flags == [True, False, True]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "v.bin"]  # no temporary left behind


def test_python2_pickle_with_str_elements_loads(tmp_path):
    rng = np.random.default_rng(1)
    imgs = [smooth(rng) for _ in range(4)]
    bins = [png_bytes(x) for x in imgs]
    tiny = png_bytes(imgs[0][:4, :4])  # < 256 bytes: SHORT_BINSTRING
    assert len(tiny) < 256
    data = py2_pickle([tiny] + bins[1:], [False, True])
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # what a plain Python-3 load of a py2 .bin does
    path = tmp_path / "py2.bin"
    path.write_bytes(data)
    images, issame = load_bin(str(path))
    assert issame.tolist() == [False, True]
    got = images.asnumpy()
    # the 4x4 image was resized to 112x112; the others are bit-exact (PNG)
    np.testing.assert_array_equal(got[0], cv2.resize(imgs[0][:4, :4], (112, 112)))
    for k in (1, 2, 3):
        np.testing.assert_array_equal(got[k], imgs[k])


def test_numpy_array_elements_and_resize(tmp_path):
    rng = np.random.default_rng(2)
    imgs = [smooth(rng, 120, 100) for _ in range(2)]
    bins = [np.frombuffer(png_bytes(x), dtype=np.uint8) for x in imgs]
    path = tmp_path / "np.bin"
    with open(path, "wb") as f:
        pickle.dump((bins, np.array([True])), f, protocol=pickle.HIGHEST_PROTOCOL)
    images, issame = load_bin(str(path), image_size=(112, 96))
    assert images.shape == (2, 112, 96, 3) and issame.tolist() == [True]
    np.testing.assert_array_equal(images.asnumpy()[1],
                                  cv2.resize(imgs[1], (96, 112), interpolation=cv2.INTER_LINEAR))
    # protocol-2 pickles written by Python 3 (bytes via _codecs.encode) load too
    with open(path, "wb") as f:
        pickle.dump(([png_bytes(x) for x in imgs], [0]), f, protocol=2)
    images, issame = load_bin(str(path), image_size=(120, 100))
    np.testing.assert_array_equal(images.asnumpy()[0], imgs[0])
    assert issame.tolist() == [False]


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalEvil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("cls", [Evil, EvalEvil])
def test_malicious_bin_is_refused_and_its_code_never_runs(tmp_path, cls):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    rng = np.random.default_rng(3)
    with open(path, "wb") as f:
        pickle.dump(([png_bytes(smooth(rng)), cls(str(marker))], [True]), f, protocol=2)
    with pytest.raises(DataFormatError, match=r"evil\.bin: refusing to load global"):
        load_bin(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("bins_n,flags_n,message", [
    (3, 1, "odd number"), (4, 3, "issame_list has 3 entries"), (0, 0, "no pairs")])
def test_pair_count_errors(tmp_path, bins_n, flags_n, message):
    rng = np.random.default_rng(4)
    img = png_bytes(smooth(rng))
    path = tmp_path / "bad.bin"
    with open(path, "wb") as f:
        pickle.dump(([img] * bins_n, [True] * flags_n), f, protocol=4)
    with pytest.raises(DataFormatError, match=rf"bad\.bin: .*{message}"):
        load_bin(str(path))


def test_other_malformed_bins(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DataFormatError, match=r"x\.bin"):
        load_bin(str(path))
    with open(path, "wb") as f:
        pickle.dump([b"a", b"b", b"c"], f)
    with pytest.raises(DataFormatError, match=r"x\.bin: expected a pickled \(bins, issame"):
        load_bin(str(path))
    rng = np.random.default_rng(5)
    good = png_bytes(smooth(rng))
    with open(path, "wb") as f:
        pickle.dump(([good, good[: len(good) // 3]], [True]), f)
    with pytest.raises(DataFormatError, match=r"x\.bin image 1 \(pair 0\): cannot decode"):
        load_bin(str(path))
    with open(path, "wb") as f:
        pickle.dump(([good, 5], [True]), f)
    with pytest.raises(DataFormatError, match="image 1 has type int"):
        load_bin(str(path))
    with pytest.raises(DataFormatError, match="cannot read"):
        load_bin(str(tmp_path / "missing.bin"))


def test_pack_bin_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "o.bin"
    with pytest.raises(ValueError, match="no pairs"):
        pack_bin([], str(out))
    with pytest.raises(DataFormatError, match=r"pair 0 second image"):
        pack_bin([(np.zeros((4, 4, 3), np.uint8), b"garbage", True)], str(out))
    with pytest.raises(ValueError, match="HWC uint8"):
        pack_bin([(np.zeros((4, 4), np.float32), np.zeros((4, 4, 3), np.uint8), True)],
                 str(out))
    assert os.listdir(tmp_path) == []


def test_pack_bin_script_aligns_the_real_photos(shared_dir, tmp_path):
    import importlib.util

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("pack_bin_script",
                                                  os.path.join(here, "scripts", "pack_bin.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    faces = os.path.join(shared_dir, "data", "real-faces")
    out = tmp_path / "real.bin"
    rc = script.main([os.path.join(faces, "pairs.txt"), str(out), "--image-root", faces,
                      "--landmarks", os.path.join(faces, "landmarks.json")])
    images, issame = load_bin(str(out))
    assert rc == 0 and images.shape == (30, 112, 112, 3)
    assert issame.tolist() == [True] * 3 + [False] * 12
    # pair 0 is obama_1 / obama_2: the first image is norm_crop of obama_1, in RGB
    from gluonfr.data.align import norm_crop, read_landmarks

    lmk = read_landmarks(os.path.join(faces, "landmarks.json"))["obama_1.jpg"]
    ref = norm_crop(cv2.imread(os.path.join(faces, "obama_1.jpg")), lmk)[:, :, ::-1]
    assert np.abs(images.asnumpy()[0].astype(int) - ref.astype(int)).mean() < 3
