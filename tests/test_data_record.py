"""RecordIO: pack_rec -> FaceRecordDataset round trips, MXNet's reader as reference, bad input."""
import os
import struct

import gluonfr  # noqa: F401
from gluonfr.data import DataFormatError, FaceRecordDataset, pack_rec, sample_pairs
from gluonfr.data.recordio import RecordFile, RecordWriter

import cv2
import mxnet as mx
import numpy as np
import pytest


def smooth_image(rng, size=112):
    """A smooth random colour image: JPEG at quality 100 keeps it within a few levels."""
    img = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.uint8)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def make_folder(root, counts, seed=0, size=112):
    """root/id_k/img_j.png (lossless) for each identity k with counts[k] images; returns RGB."""
    rng = np.random.default_rng(seed)
    images = {}
    for k, n in enumerate(counts):
        sub = os.path.join(root, f"id_{k:03d}")
        os.makedirs(sub)
        for j in range(n):
            rgb = smooth_image(rng, size)
            cv2.imwrite(os.path.join(sub, f"img_{j}.png"), rgb[:, :, ::-1])
            images[(k, j)] = rgb
    return images


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    base = tmp_path_factory.mktemp("packed")
    images = make_folder(str(base / "faces"), [3, 1, 4])
    out = str(base / "rec")
    info = pack_rec(str(base / "faces"), out, quality=100)
    return out, images, info


@pytest.mark.compat
def test_pack_rec_round_trip_with_header(packed):
    out, images, info = packed
    assert listing(out) == ["property", "train.idx", "train.rec"]
    assert info["num_images"] == 8 and info["num_classes"] == 3
    assert info["identities"] == ["id_000", "id_001", "id_002"]
    ds = FaceRecordDataset(out)
    assert ds.indexed and ds.num_classes == 3 and len(ds) == 8  # header/identity recs not counted
    order = [(k, j) for k in range(3) for j in range([3, 1, 4][k])]
    for i, (k, j) in enumerate(order):
        img, label = ds[i]
        assert isinstance(img, mx.nd.NDArray) and img.dtype == np.uint8
        assert img.shape == (112, 112, 3) and label == k and isinstance(label, int)
        diff = np.abs(img.asnumpy().astype(int) - images[(k, j)].astype(int))
        assert diff.mean() < 3 and diff.max() < 40, (i, diff.mean(), diff.max())
    assert ds.identity_ranges == {0: (1, 4), 1: (4, 5), 2: (5, 9)}
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    assert ds[-1][1] == 2
    with pytest.raises(IndexError):
        ds[8]


def test_layout_matches_insightface_as_read_by_mxnet(packed):
    # MXNet's own reader is the reference for the physical and logical layout
    out, _, _ = packed
    rec = mx.recordio.MXIndexedRecordIO(os.path.join(out, "train.idx"),
                                        os.path.join(out, "train.rec"), "r")
    h0, payload = mx.recordio.unpack(rec.read_idx(0))
    assert h0.flag == 2 and list(h0.label) == [9.0, 12.0] and payload == b""
    ranges = [tuple(mx.recordio.unpack(rec.read_idx(k))[0].label) for k in range(9, 12)]
    assert ranges == [(1.0, 4.0), (4.0, 5.0), (5.0, 9.0)]
    mine = RecordFile(os.path.join(out, "train.rec"), os.path.join(out, "train.idx"))
    for key in rec.keys:
        assert mine.read(key) == rec.read_idx(key)
    h, img = mx.recordio.unpack(rec.read_idx(6))
    assert h.flag == 0 and h.label == 2.0 and h.id == 6
    assert mx.image.imdecode(img).shape == (112, 112, 3)
    rec.close()
    with open(os.path.join(out, "property")) as f:
        assert f.read() == "3,112,112\n"


@pytest.mark.parametrize("header,array_labels", [(False, False), (True, True), (False, True)])
def test_round_trip_layouts_and_label_kinds(tmp_path, header, array_labels):
    images = make_folder(str(tmp_path / "faces"), [2, 3], seed=1)
    out = str(tmp_path / "rec")
    pack_rec(str(tmp_path / "faces"), out, quality=100, header=header, array_labels=array_labels)
    rec = mx.recordio.MXIndexedRecordIO(os.path.join(out, "train.idx"),
                                        os.path.join(out, "train.rec"), "r")
    first = mx.recordio.unpack(rec.read_idx(rec.keys[0]))[0]
    assert (first.flag == 2) == (header or array_labels)
    assert sorted(rec.keys) == (list(range(8)) if header else list(range(5)))
    ds = FaceRecordDataset(out)
    assert ds.indexed == header and len(ds) == 5 and ds.num_classes == 2
    order = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    for i, (k, j) in enumerate(order):
        img, label = ds[i]
        assert label == k
        assert np.abs(img.asnumpy().astype(int) - images[(k, j)].astype(int)).mean() < 3
    assert ds.identity_ranges[1] == ((3, 6) if header else (2, 5))


def test_shuffled_rec_with_extra_property_lines(tmp_path):
    # rec2shufrec-style: keys 0..N-1 in shuffled label order, property with extra lines
    rng = np.random.default_rng(3)
    out = tmp_path / "shuf"
    os.makedirs(out)
    labels = [2, 0, 1, 0, 2, 1]
    rec = mx.recordio.MXIndexedRecordIO(str(out / "train.idx"), str(out / "train.rec"), "w")
    for key, lab in enumerate(labels):
        jpg = cv2.imencode(".jpg", smooth_image(rng))[1].tobytes()
        rec.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, float(lab), key, 0), jpg))
    rec.close()
    (out / "property").write_text("3,112,112\n6\nshuffled\n2024-01-01\n")
    ds = FaceRecordDataset(str(out))
    assert not ds.indexed and len(ds) == 6
    assert [ds[i][1] for i in range(6)] == labels
    assert ds.labels.tolist() == labels
    assert {k: v.tolist() for k, v in ds.identity_indices().items()} == \
        {0: [1, 3], 1: [2, 5], 2: [0, 4]}
    with pytest.raises(ValueError, match="identity_indices"):
        _ = ds.identity_ranges
    sub = ds.subset([2, 1])
    assert sub.num_classes == 2 and len(sub) == 4
    assert [sub[i][1] for i in range(4)] == [0, 0, 1, 1]
    assert (sub[0][0].asnumpy() == ds[0][0].asnumpy()).all()


def test_subset_of_indexed_rec_relabels(packed):
    out, images, _ = packed
    ds = FaceRecordDataset(out)
    sub = ds.subset([2, 0])
    assert len(sub) == 7 and sub.num_classes == 2
    assert [sub[i][1] for i in range(len(sub))] == [0, 0, 0, 0, 1, 1, 1]
    assert sub.identity_ranges == {0: (5, 9), 1: (1, 4)}
    same = ds.subset([1], relabel=False)
    assert len(same) == 1 and same[0][1] == 1 and same.num_classes == 3
    nested = sub.subset([1])
    assert len(nested) == 3 and [nested[i][1] for i in range(3)] == [0, 0, 0]
    with pytest.raises(ValueError, match="outside"):
        ds.subset([5])


def test_reader_joins_records_split_at_the_magic_number(tmp_path):
    # dmlc's writer splits a payload at every aligned occurrence of the magic number
    magic = struct.pack("<I", 0xCED7230A)
    payloads = [b"abcd" + magic + b"efghij", magic + b"x" * 9 + magic + magic, b"plain!"]
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "a.idx"), str(tmp_path / "a.rec"), "w")
    for k, p in enumerate(payloads):
        rec.write_idx(k, p)
    rec.close()
    plain = sum(8 + (len(p) + 3) // 4 * 4 for p in payloads)
    assert os.path.getsize(tmp_path / "a.rec") > plain  # the writer really did split
    mine = RecordFile(str(tmp_path / "a.rec"), str(tmp_path / "a.idx"))
    assert [mine.read(k) for k in range(3)] == payloads


# -- bad input ----------------------------------------------------------------------------
def write_rec(out, items, num_classes=None, header=True):
    """items: [(label, bytes)] in label order."""
    with RecordWriter(str(out), header=header) as w:
        for label, data in items:
            w.add(label, data)
    if num_classes is not None:
        (out / "property").write_text(f"{num_classes},112,112\n")


def jpeg(rng):
    return cv2.imencode(".jpg", smooth_image(rng))[1].tobytes()


def test_corrupt_jpeg_names_file_and_record(tmp_path):
    rng = np.random.default_rng(4)
    write_rec(tmp_path, [(0, jpeg(rng)), (0, b"\xff\xd8 definitely not a jpeg" * 4),
                         (1, jpeg(rng))])
    ds = FaceRecordDataset(str(tmp_path))
    ds[0], ds[2]
    with pytest.raises(DataFormatError, match=r"train\.rec record key 2.*cannot decode"):
        ds[1]


def test_truncated_rec(tmp_path):
    rng = np.random.default_rng(5)
    write_rec(tmp_path, [(k // 2, jpeg(rng)) for k in range(6)])
    rec = tmp_path / "train.rec"
    size = os.path.getsize(rec)
    with open(rec, "r+b") as f:
        f.truncate(size - 6)  # cuts into the last record
    with pytest.raises(DataFormatError, match=r"train\.rec.*truncated"):
        FaceRecordDataset(str(tmp_path))
    with open(rec, "r+b") as f:
        f.truncate(size // 2)  # later offsets now point past the end
    with pytest.raises(DataFormatError, match=r"train\.idx: key \d+ points at byte \d+, past"):
        FaceRecordDataset(str(tmp_path))


def test_idx_offset_past_end_and_malformed_idx(tmp_path):
    rng = np.random.default_rng(6)
    write_rec(tmp_path, [(0, jpeg(rng)), (1, jpeg(rng))])
    idx = tmp_path / "train.idx"
    lines = idx.read_text().splitlines()
    key = lines[1].split("\t")[0]
    idx.write_text("\n".join([lines[0], f"{key}\t99999999"] + lines[2:]) + "\n")
    with pytest.raises(DataFormatError, match=rf"train\.idx: key {key} points at byte 99999999"):
        FaceRecordDataset(str(tmp_path))
    idx.write_text("\n".join(lines[:1] + ["7\tabc"] + lines[2:]) + "\n")
    with pytest.raises(DataFormatError, match=r"train\.idx:2: malformed"):
        FaceRecordDataset(str(tmp_path))
    # an offset inside a record (not at its start)
    idx.write_text("\n".join([lines[0], f"{key}\t12"] + lines[2:]) + "\n")
    with pytest.raises(DataFormatError, match="bad magic"):
        FaceRecordDataset(str(tmp_path))[1]


@pytest.mark.parametrize("content", [None, "", "abc\n", "10,112\n", "10,112,0\n", "x,112,112\n"])
def test_missing_or_malformed_property(tmp_path, content):
    rng = np.random.default_rng(7)
    write_rec(tmp_path, [(0, jpeg(rng))])
    prop = tmp_path / "property"
    if content is None:
        prop.unlink()
    else:
        prop.write_text(content)
    with pytest.raises(DataFormatError, match="property"):
        FaceRecordDataset(str(tmp_path))


def test_labels_beyond_num_classes(tmp_path):
    rng = np.random.default_rng(8)
    items = [(0, jpeg(rng)), (1, jpeg(rng)), (2, jpeg(rng))]
    write_rec(tmp_path, items, num_classes=2, header=False)
    ds = FaceRecordDataset(str(tmp_path))
    ds[1]
    with pytest.raises(DataFormatError, match=r"record key 2: label 2 is outside \[0, num_"):
        ds[2]
    # indexed layout: more identity records than property's num_classes fails up front
    other = tmp_path / "indexed"
    write_rec(other, items, num_classes=2, header=True)
    with pytest.raises(DataFormatError, match="3 identity records"):
        FaceRecordDataset(str(other))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"train\.rec: not found"):
        FaceRecordDataset(str(tmp_path))


def test_pack_rec_empty_folder_writes_nothing(tmp_path):
    (tmp_path / "faces" / "person").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images"):
        pack_rec(str(tmp_path / "faces"), str(tmp_path / "out"))
    assert listing(tmp_path / "out") == []
    with pytest.raises(ValueError, match="not a folder"):
        pack_rec(str(tmp_path / "nowhere"), str(tmp_path / "out"))


def test_pack_rec_unreadable_images_skip_or_raise(tmp_path):
    make_folder(str(tmp_path / "faces"), [2, 1, 2], seed=9)
    (tmp_path / "faces" / "id_000" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    for f in os.listdir(tmp_path / "faces" / "id_001"):  # identity 1 ends up with no image
        (tmp_path / "faces" / "id_001" / f).write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(DataFormatError, match=r"broken\.jpg"):
        pack_rec(str(tmp_path / "faces"), str(out), on_error="raise")
    assert listing(out) == []  # nothing half-written, no temporaries left
    with pytest.warns(UserWarning, match=r"skipped 2 of 6 images.*1 identities"):
        info = pack_rec(str(tmp_path / "faces"), str(out))
    assert info["num_images"] == 4 and info["identities"] == ["id_000", "id_002"]
    assert len(info["skipped"]) == 2
    ds = FaceRecordDataset(str(out))
    assert ds.num_classes == 2 and ds.labels.tolist() == [0, 0, 1, 1]
    # all images unreadable: an error, and the previous good output is untouched
    bad = tmp_path / "bad"
    (bad / "a").mkdir(parents=True)
    (bad / "a" / "x.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="none of the 1 images"):
        pack_rec(str(bad), str(out))
    assert listing(out) == ["property", "train.idx", "train.rec"]
    assert len(FaceRecordDataset(str(out))) == 4


def test_pack_rec_wrong_size_without_landmarks(tmp_path):
    make_folder(str(tmp_path / "faces"), [1], size=96)
    with pytest.raises(ValueError, match=r"96x96, expected an aligned 112x112"):
        pack_rec(str(tmp_path / "faces"), str(tmp_path / "out"), detector=None)
    assert listing(tmp_path / "out") == []


def test_pack_rec_aligns_with_landmarks(tmp_path):
    from gluonfr.data.align import ARCFACE_TEMPLATE, transform_points

    rng = np.random.default_rng(10)
    face = smooth_image(rng)
    m = np.array([[1.8, -0.4, 60.0], [0.4, 1.8, 30.0]])  # scale ~1.84, rotation ~12.5 deg
    photo = cv2.warpAffine(face, m, (360, 320), flags=cv2.INTER_CUBIC)
    (tmp_path / "faces" / "p").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "faces" / "p" / "a.png"), photo[:, :, ::-1])
    lmk = transform_points(m, ARCFACE_TEMPLATE)
    (tmp_path / "lmk.txt").write_text("p/a.png " + " ".join(f"{v:.4f}" for v in lmk.ravel()))
    pack_rec(str(tmp_path / "faces"), str(tmp_path / "out"), quality=100,
             landmarks=str(tmp_path / "lmk.txt"))
    img = FaceRecordDataset(str(tmp_path / "out"))[0][0].asnumpy()
    inner = (slice(10, 102), slice(10, 102))
    assert np.abs(img[inner].astype(int) - face[inner].astype(int)).mean() < 3


def test_pack_rec_identity_subset_relabels_and_names_unknown(tmp_path):
    images = make_folder(str(tmp_path / "faces"), [2, 3, 1, 2])
    info = pack_rec(str(tmp_path / "faces"), str(tmp_path / "out"), quality=100,
                    identities=["id_003", "id_001"])
    assert info["identities"] == ["id_001", "id_003"] and info["num_images"] == 5
    ds = FaceRecordDataset(str(tmp_path / "out"))
    assert ds.num_classes == 2 and ds.labels.tolist() == [0, 0, 0, 1, 1]
    diff = np.abs(ds[3][0].asnumpy().astype(int) - images[(3, 0)].astype(int))
    assert diff.mean() < 3  # label 1 is folder id_003
    with pytest.raises(ValueError, match=r"id_009"):
        pack_rec(str(tmp_path / "faces"), str(tmp_path / "out2"), identities=["id_009"])
    assert not os.path.exists(tmp_path / "out2")


def test_sample_pairs_lfw_order_identities_and_no_repeats():
    folders = [(f"p{k}", [f"p{k}/{j}.jpg" for j in range(n)]) for k, n in
               enumerate([3, 1, 4, 2, 0])]
    owner = {path: name for name, files in folders for path in files}
    pairs = sample_pairs(folders, 40, seed=3, folds=10)
    assert pairs == sample_pairs(folders, 40, seed=3, folds=10)
    assert len(pairs) == 40
    # fold f holds pairs 4f..4f+3: two same pairs, then two different pairs
    assert [p[2] for p in pairs] == [True, True, False, False] * 10
    for a, b, same in pairs:
        assert a != b and (owner[a] == owner[b]) == same
    same_keys = [tuple(sorted(p[:2])) for p in pairs if p[2]]
    # 3 + 6 + 1 = 10 distinct same pairs exist: the first 10 drawn are all different
    assert len(set(same_keys[:10])) == 10
    diff_keys = [tuple(sorted(p[:2])) for p in pairs if not p[2]]
    assert len(set(diff_keys)) == 20  # 3*1 + 3*4 + ... = 45 distinct: no repeat needed
    with pytest.raises(ValueError, match="even"):
        sample_pairs(folders, 7)
    with pytest.raises(ValueError, match="2 identities"):
        sample_pairs([("a", ["a/1.jpg", "a/2.jpg"])], 4)
