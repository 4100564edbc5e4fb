"""Official protocol files (LFW, CFP, CALFW/CPLFW, AgeDB) -> pair lists -> insightface .bin."""
import os
import sys

import gluonfr  # noqa: F401
from gluonfr.cli.pack_bin import main as pack_bin_main
from gluonfr.data import DataFormatError, load_bin
from gluonfr.data.align import norm_crop
from gluonfr.data.protocols import (
    detect_protocol,
    read_agedb_pairs,
    read_cfp_pairs,
    read_lfw_pairs,
    read_protocol,
    read_xlfw_pairs,
)

import cv2
import numpy as np
import pytest

NAMES = ["Ann_Smith", "Bob_Jones", "Carl_Lee", "Dee_Fox"]


def _colour(i, n):
    """A flat RGB colour that identifies image n of identity i after a JPEG round trip."""
    return (30 * i + 20, 30 * n + 20, 200)


def _flat_jpeg(path, rgb, size=112):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.full((size, size, 3), rgb[::-1], np.uint8))


def _decode_colour(img):
    r, g, _ = img.reshape(-1, 3).mean(axis=0)
    return int(round((r - 20) / 30)), int(round((g - 20) / 30))


@pytest.fixture()
def lfw(tmp_path):
    """LFW's exact layout: lfw/<name>/<name>_<nnnn>.jpg and a pairs.txt of 2 sets of 3."""
    for i, name in enumerate(NAMES):
        for n in range(1, 4):
            _flat_jpeg(str(tmp_path / "lfw" / name / f"{name}_{n:04d}.jpg"), _colour(i, n))
    same1 = [("Ann_Smith", 1, 2), ("Bob_Jones", 1, 3), ("Carl_Lee", 2, 3)]
    diff1 = [("Ann_Smith", 3, "Dee_Fox", 1), ("Bob_Jones", 2, "Carl_Lee", 1),
             ("Dee_Fox", 2, "Ann_Smith", 1)]
    same2 = [("Dee_Fox", 1, 3), ("Ann_Smith", 1, 3), ("Bob_Jones", 2, 3)]
    diff2 = [("Carl_Lee", 3, "Bob_Jones", 1), ("Dee_Fox", 3, "Bob_Jones", 3),
             ("Ann_Smith", 2, "Carl_Lee", 2)]
    lines = ["2\t3"]
    expected = []
    for same, diff in ((same1, diff1), (same2, diff2)):
        for name, a, b in same:
            lines.append(f"{name}\t{a}\t{b}")
            expected.append(((name, a), (name, b), True))
        for n1, a, n2, b in diff:
            lines.append(f"{n1}\t{a}\t{n2}\t{b}")
            expected.append(((n1, a), (n2, b), False))
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, lines, expected


def test_lfw_pairs_txt_to_bin_traces_every_pair_in_protocol_order(lfw, capsys):
    root, _, expected = lfw
    assert detect_protocol(str(root / "pairs.txt")) == "lfw"
    out = root / "lfw.bin"
    assert pack_bin_main([str(root / "pairs.txt"), str(out)]) == 0
    assert "wrote 12 pairs (6 same) of lfw" in capsys.readouterr().out
    images, issame = load_bin(str(out))
    images = images.asnumpy()
    assert images.shape == (24, 112, 112, 3)
    assert issame.tolist() == [e[2] for e in expected]
    for k, (a, b, _) in enumerate(expected):
        for img, (name, n) in ((images[2 * k], a), (images[2 * k + 1], b)):
            assert _decode_colour(img) == (NAMES.index(name), n), (k, name, n)
    # the reader's own paths: <root>/lfw/<name>/<name>_<nnnn>.jpg
    pairs = read_lfw_pairs(str(root / "pairs.txt"))
    assert pairs[3] == (str(root / "lfw" / "Ann_Smith" / "Ann_Smith_0003.jpg"),
                        str(root / "lfw" / "Dee_Fox" / "Dee_Fox_0001.jpg"), False)


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls.__setitem__(2, "Bob_Jones\t1\tCarl_Lee\t3"),
     r"pairs.txt:3: expected 'name n1 n2' \(a same-person pair of set 1\)"),
    (lambda ls: ls.__setitem__(5, "Ann_Smith\t3\t1"),
     r"pairs.txt:6: expected 'name1 n1 name2 n2'"),
    (lambda ls: ls.__setitem__(1, "Ann_Smith\tone\t2"), r"pairs.txt:2: image number 'one'"),
    (lambda ls: ls.__setitem__(1, "Ann_Smith\t1\t9"), r"pairs.txt:2: image .*Ann_Smith_0009.jpg "
                                                      r"not found"),
    (lambda ls: ls.__setitem__(0, "10 300"), r"promises 10 sets of 300 .* has 12 pair lines"),
    (lambda ls: ls.__setitem__(0, "ten 3"), r"pairs.txt:1: expected LFW's header"),
    (lambda ls: ls.pop(), r"has 11 pair lines"),
])
def test_malformed_lfw_lines_are_named(lfw, edit, message, capsys):
    root, lines, _ = lfw
    lines = list(lines)
    edit(lines)
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=message):
        read_lfw_pairs(str(root / "pairs.txt"))
    assert pack_bin_main([str(root / "pairs.txt"), str(root / "x.bin"), "--format", "lfw"]) == 2
    assert "pairs.txt" in capsys.readouterr().err
    assert not (root / "x.bin").exists()


def _cfp(tmp_path):
    """CFP's layout: Data/Images/<id>/{frontal,profile}/NN.jpg, Protocol/ lists and splits."""
    proto = tmp_path / "cfp-dataset" / "Protocol"
    proto.mkdir(parents=True)
    flist, plist = [], []
    for i in range(3):
        for n in range(1, 3):
            rel = f"../Data/Images/{i + 1:03d}/frontal/{n:02d}.jpg"
            _flat_jpeg(os.path.normpath(str(proto / rel)), _colour(i, n))
            flist.append(rel)
            rel = f"../Data/Images/{i + 1:03d}/profile/{n:02d}.jpg"
            _flat_jpeg(os.path.normpath(str(proto / rel)), _colour(i, n + 4))
            plist.append(rel)
    (proto / "Pair_list_F.txt").write_text("".join(f"{k + 1} {p}\n" for k, p in enumerate(flist)))
    (proto / "Pair_list_P.txt").write_text("".join(f"{k + 1} {p}\n" for k, p in enumerate(plist)))
    splits = {"01": ([(1, 2), (3, 4)], [(1, 3), (2, 6)]), "02": ([(5, 6)], [(4, 5)])}
    for split in ("FF", "FP"):
        for fold, (same, diff) in splits.items():
            d = proto / "Split" / split / fold
            d.mkdir(parents=True)
            (d / "same.txt").write_text("".join(f"{i},{j}\n" for i, j in same))
            (d / "diff.txt").write_text("".join(f"{i},{j}\n" for i, j in diff))
    order = [(i, j, True) for i, j in splits["01"][0]] + [(i, j, False) for i, j in
                                                         splits["01"][1]]
    order += [(5, 6, True), (4, 5, False)]
    return proto, flist, plist, order


def test_cfp_protocol_ff_and_fp_in_fold_order(tmp_path, capsys):
    proto, flist, plist, order = _cfp(tmp_path)
    assert detect_protocol(str(proto)) == "cfp_fp"
    assert detect_protocol(str(proto.parent)) == "cfp_fp"  # the dataset root works too
    for split, second in (("FF", flist), ("FP", plist)):
        pairs = read_cfp_pairs(str(proto), split)
        assert [p[2] for p in pairs] == [o[2] for o in order]
        for (a, b, _), (i, j, _) in zip(pairs, order):
            assert a == os.path.normpath(str(proto / flist[i - 1]))
            assert b == os.path.normpath(str(proto / second[j - 1]))
    out = tmp_path / "cfp_ff.bin"
    assert pack_bin_main([str(proto.parent), str(out), "--format", "cfp_ff"]) == 0
    images, issame = load_bin(str(out))
    images = images.asnumpy()
    # frontal image k (1-based) of the list is identity (k-1)//2, number (k-1)%2+1
    for k, (i, j, same) in enumerate(order):
        assert _decode_colour(images[2 * k]) == ((i - 1) // 2, (i - 1) % 2 + 1)
        assert _decode_colour(images[2 * k + 1]) == ((j - 1) // 2, (j - 1) % 2 + 1)
        assert issame[k] == same
    bad = proto / "Split" / "FP" / "02" / "diff.txt"
    bad.write_text("4,5\n4;7\n")
    with pytest.raises(DataFormatError, match=r"02/diff.txt:2: expected 'i,j'"):
        read_cfp_pairs(str(proto), "FP")
    bad.write_text("4,9\n")
    with pytest.raises(DataFormatError, match=r"diff.txt:1: image 9 is not in Pair_list_P.txt"):
        read_cfp_pairs(str(proto), "FP")


def test_calfw_cplfw_pairs(tmp_path):
    folder = tmp_path / "calfw" / "aligned images"
    files = []
    for i, name in enumerate(NAMES[:3]):
        for n in (1, 2):
            f = f"{name}_{n:04d}.jpg"
            _flat_jpeg(str(folder / f), _colour(i, n))
            files.append(f)
    lines = [f"{files[0]} 1", f"{files[1]} 1", f"{files[2]} 0", f"{files[4]} 0",
             f"{files[4]} 2", f"{files[5]} 2"]
    pairs_file = tmp_path / "calfw" / "pairs_CALFW.txt"
    pairs_file.write_text("\n".join(lines) + "\n")
    assert detect_protocol(str(pairs_file)) == "xlfw"
    pairs, fmt = read_protocol(str(pairs_file))
    assert fmt == "xlfw"
    assert pairs == [(str(folder / files[0]), str(folder / files[1]), True),
                     (str(folder / files[2]), str(folder / files[4]), False),
                     (str(folder / files[4]), str(folder / files[5]), True)]
    pairs_file.write_text("\n".join(lines[:5]) + "\n")
    with pytest.raises(DataFormatError, match="5 image lines.*line 5 has no partner"):
        read_xlfw_pairs(str(pairs_file))
    pairs_file.write_text("\n".join(lines[:3] + [f"{files[4]} 1"]) + "\n")
    with pytest.raises(DataFormatError, match="pairs_CALFW.txt:4: label 1 disagrees with line 3"):
        read_xlfw_pairs(str(pairs_file))


def test_pack_bin_detects_and_aligns_raw_photos(shared_dir, third_party_store, tmp_path):
    faces = os.path.join(shared_dir, "data", "real-faces")
    assert detect_protocol(os.path.join(faces, "pairs.txt")) == "list"
    out = tmp_path / "real.bin"
    assert pack_bin_main([os.path.join(faces, "pairs.txt"), str(out), "--image-root", faces,
                          "--detect"]) == 0
    images, issame = load_bin(str(out))
    assert images.shape == (30, 112, 112, 3) and issame.sum() == 3
    # pair 0's first image is obama_1, whose detected points are the recorded ones
    import json

    with open(os.path.join(faces, "landmarks.json")) as f:
        lmk = json.load(f)["obama_1.jpg"]["landmarks5"]
    ref = norm_crop(cv2.imread(os.path.join(faces, "obama_1.jpg")), lmk)[:, :, ::-1]
    assert np.abs(images.asnumpy()[0].astype(int) - ref.astype(int)).mean() < 3


# -- AgeDB-30: the .mat exactly as loadmat sees AgeDB's (object arrays of 1x1 structs) -------

def _mat_struct(*fields):
    """A 1x1 MATLAB struct with positional fields ``(name, value)`` (savemat writes it)."""
    s = np.zeros((1, 1), dtype=[(name, "O") for name, _ in fields])
    for name, value in fields:
        s[0, 0][name] = value
    return s


def _agedb_splits(folds):
    """``splits`` from ``[(cell entries [[stem_a, ...], [stem_b, ...]], flags), ...]``."""
    splits = np.empty((len(folds), 1), dtype=object)
    for i, (stems, flags) in enumerate(folds):
        cell = np.empty((2, len(flags)), dtype=object)
        for r in range(2):
            for c, stem in enumerate(stems[r]):
                age = int(stem.split("_")[2])
                cell[r, c] = _mat_struct(("name", stem), ("age", float(age)))
        # field names as a guess: the reader goes by position, so any names must do
        splits[i, 0] = _mat_struct(("images", cell),
                                   ("flag", np.array([flags], dtype=np.float64)))
    return splits


@pytest.fixture()
def agedb(tmp_path):
    """AgeDB's folder: the 30-year .mat (10 folds x 2 pairs) and 03_Protocol_Images/."""
    scipy_io = pytest.importorskip("scipy.io")
    root = tmp_path / "AgeDB"
    stems = {}
    for i, name in enumerate(NAMES):
        for n in range(1, 6):
            stem = f"{len(stems) + 1}_{name.replace('_', '')}_{20 + 7 * n}_{'mf'[i % 2]}"
            stems[(i, n)] = stem
            _flat_jpeg(str(root / "03_Protocol_Images" / f"{stem}.jpg"), _colour(i, n))
    rng = np.random.RandomState(0)
    folds, expected = [], []
    for fold in range(10):
        a, b, flags = [], [], []
        for pair in range(2):
            i, n1, n2 = rng.randint(4), rng.randint(1, 6), rng.randint(1, 6)
            same = (fold + pair) % 2 == 0
            j = i if same else (i + 1 + rng.randint(3)) % 4
            a.append(stems[(i, n1)])
            b.append(stems[(j, n2)])
            flags.append(1 if same else -1)
            expected.append(((i, n1), (j, n2), same))
        folds.append(([a, b], flags))
    # one pair of the same person flagged -1: the label is the file's flag, not the name
    (sa, sb), fl = folds[9]
    sb[1], fl[1] = stems[(int(sa[1].split("_")[0]) - 1) // 5, 5], -1
    (i, n1), _, _ = expected[19]
    expected[19] = ((i, n1), (i, 5), False)
    mat = root / "04_FINAL_protocol_30_years.mat"
    scipy_io.savemat(str(mat), {"splits": _agedb_splits(folds)})
    return root, mat, folds, expected, stems


def test_agedb_mat_to_bin_traces_every_pair_in_fold_order(agedb, capsys):
    root, mat, _, expected, stems = agedb
    assert detect_protocol(str(root)) == "agedb"
    assert detect_protocol(str(mat)) == "agedb"
    pairs = read_agedb_pairs(str(mat))
    images = root / "03_Protocol_Images"
    assert pairs == [(str(images / f"{stems[a]}.jpg"), str(images / f"{stems[b]}.jpg"), same)
                     for a, b, same in expected]
    out = root / "agedb_30.bin"
    assert pack_bin_main([str(root), str(out)]) == 0
    assert "wrote 20 pairs (9 same) of agedb" in capsys.readouterr().out
    imgs, issame = load_bin(str(out))
    imgs = imgs.asnumpy()
    assert imgs.shape == (40, 112, 112, 3)
    assert issame.tolist() == [e[2] for e in expected]
    for k, (a, b, _) in enumerate(expected):
        assert _decode_colour(imgs[2 * k]) == a, k
        assert _decode_colour(imgs[2 * k + 1]) == b, k


def test_malformed_agedb_mat_names_file_fold_and_pair(agedb, capsys):
    root, mat, folds, _, _ = agedb
    scipy_io = pytest.importorskip("scipy.io")

    def write(splits):
        scipy_io.savemat(str(mat), {"splits": splits})

    splits = _agedb_splits(folds)
    cell = splits[3, 0][0, 0]["images"]
    splits[3, 0][0, 0]["images"] = np.concatenate([cell, cell[:1]])  # a (3, 2) cell
    write(splits)
    with pytest.raises(DataFormatError, match=r"30_years.mat: fold 4 of 10: the first field "
                                              r"is a \(3, 2\) array"):
        read_agedb_pairs(str(mat))
    assert pack_bin_main([str(root), str(root / "x.bin")]) == 2
    assert "fold 4 of 10" in capsys.readouterr().err
    assert not (root / "x.bin").exists()

    splits = _agedb_splits(folds)
    splits[1, 0] = _mat_struct(("images", splits[1, 0][0, 0]["images"]))  # no flags
    write(splits)
    with pytest.raises(DataFormatError, match=r"fold 2 of 10: expected a struct of \(image "
                                              r"cell, flags\)"):
        read_agedb_pairs(str(mat))

    splits = _agedb_splits(folds)
    splits[6, 0][0, 0]["flag"] = np.array([[1.0]])  # one flag for two pairs
    write(splits)
    with pytest.raises(DataFormatError, match=r"fold 7 of 10: the second field \(the flags\) "
                                              r"is a \(1, 1\) float64 array, expected 2"):
        read_agedb_pairs(str(mat))

    splits = _agedb_splits(folds)
    splits[8, 0][0, 0]["flag"] = np.array([[1.0, 0.0]])
    write(splits)
    with pytest.raises(DataFormatError, match=r"fold 9 of 10, pair 2: flag 0, expected 1"):
        read_agedb_pairs(str(mat))

    splits = _agedb_splits(folds)
    splits[0, 0][0, 0]["images"][1, 1] = _mat_struct(("name", "no_such_photo_30_m"),
                                                     ("age", 30.0))
    write(splits)
    with pytest.raises(DataFormatError, match=r"30_years.mat:fold 1 pair 2: image .*"
                                              r"no_such_photo_30_m.jpg not found"):
        read_agedb_pairs(str(mat))

    scipy_io.savemat(str(mat), {"folds": _agedb_splits(folds)})
    with pytest.raises(DataFormatError, match=r"no variable 'splits'.*\['folds'\]"):
        read_agedb_pairs(str(mat))


def test_agedb_without_scipy_names_the_extra(agedb, monkeypatch):
    root, mat, _, _, _ = agedb
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import scipy.io now fails
    with pytest.raises(ImportError, match=r"pip install 'gluonfr\[agedb\]'"):
        read_agedb_pairs(str(root))
