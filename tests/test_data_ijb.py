"""IJB_release readers: a generated layout read back, malformed lines refused by number."""
import os

from gluonfr.data import DataFormatError
from gluonfr.data.ijb import (
    ijb_paths,
    load_ijb,
    make_synthetic_ijb,
    read_1n_csv,
    read_face_tid_mid,
    read_name_5pts_score,
    read_template_pairs,
)

import numpy as np
import pytest


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("ijb")
    make_synthetic_ijb(str(root), "IJBC", num_subjects=4, templates_per_subject=2,
                       medias_per_template=2, images_per_media=1, distractors=1, seed=1)
    return str(root)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_generated_layout_reads_back(layout):
    meta = load_ijb(layout, "IJBC")
    assert len(meta) == (4 * 2 + 1) * 2  # (subjects x templates + distractor) x media
    assert len(np.unique(meta.templates)) == 9
    assert len(meta.labels) == 9 * 8 // 2 and meta.labels.sum() == 4  # one genuine per subject
    assert meta.landmarks.shape == (len(meta), 5, 2) and meta.faceness.min() >= 0.5
    assert sorted(meta.galleries) == ["G1", "G2"]
    g1_ids, g1_subjects = meta.galleries["G1"]
    np.testing.assert_array_equal(g1_subjects, [1, 2])
    probe_ids, probe_subjects = meta.probes
    np.testing.assert_array_equal(probe_subjects, [1, 2, 3, 4, 5])
    assert not set(probe_ids) & set(g1_ids)
    for i in range(len(meta)):
        assert os.path.isfile(meta.image_path(i))
    # the benchmark folder itself is accepted as the root too
    assert len(load_ijb(os.path.join(layout, "IJBC"), "IJBC", pairs=False).labels) == 0


def test_tid_mid_malformed_lines(tmp_path):
    path = write(tmp_path / "t.txt", "1.jpg 1 1\n2.jpg 1\n")
    with pytest.raises(DataFormatError, match=r"t.txt, line 2: expected 3 fields"):
        read_face_tid_mid(path)
    path = write(tmp_path / "t.txt", "1.jpg 1 1\n\n3.jpg x 1\n")
    with pytest.raises(DataFormatError, match=r"line 3: template id 'x' is not an integer"):
        read_face_tid_mid(path)
    names, templates, medias = read_face_tid_mid(write(tmp_path / "t.txt", "a 3 4\nb 5 6\n"))
    assert names.tolist() == ["a", "b"] and templates.tolist() == [3, 5]


def test_5pts_malformed_lines(tmp_path):
    good = "1.jpg " + " ".join(str(v) for v in range(10)) + " 0.9\n"
    path = write(tmp_path / "p.txt", good + "2.jpg 1 2 3\n")
    with pytest.raises(DataFormatError, match=r"p.txt, line 2: expected 12 fields"):
        read_name_5pts_score(path)
    path = write(tmp_path / "p.txt", good + good.replace(" 4 ", " four "))
    with pytest.raises(DataFormatError, match=r"line 2: the 5 points and the faceness"):
        read_name_5pts_score(path)
    names, lmk, face = read_name_5pts_score(write(tmp_path / "p.txt", good))
    np.testing.assert_array_equal(lmk[0], np.arange(10).reshape(5, 2))
    assert face[0] == pytest.approx(0.9)


def test_pair_file_malformed_lines(tmp_path):
    for text, message in [("1 2 1\n3 4\n5 6 0\n", r"line 2: expected 3 fields"),
                          ("1 2 1\n3 4 0\n5 6 2\n", r"line 3: label must be 0 or 1"),
                          ("1 2 1\n3 x 0\n", r"line 2: template id 'x'"),
                          ("1 2 1\n3 4.5 0\n", r"line 2: template id '4.5'"),
                          ("", r"no pairs listed")]:
        with pytest.raises(DataFormatError, match=message):
            read_template_pairs(write(tmp_path / "pairs.txt", text))
    t1, t2, labels = read_template_pairs(write(tmp_path / "pairs.txt", "1 2 1\n\n3 4 0"))
    assert (t1.tolist(), t2.tolist(), labels.tolist()) == ([1, 3], [2, 4], [1, 0])
    t1, t2, labels = read_template_pairs(write(tmp_path / "pairs.txt", "7 8 0\n9 10 1\n"))
    assert (t1.tolist(), labels.dtype) == ([7, 9], np.int8)


def test_1n_csv(tmp_path):
    path = write(tmp_path / "g.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n5,1,a\n3,2,b\n5,1,c\n")
    ids, subjects = read_1n_csv(path)
    assert ids.tolist() == [3, 5] and subjects.tolist() == [2, 1]
    path = write(tmp_path / "g.csv", "TEMPLATE_ID,SUBJECT_ID\n5,1\n5,2\n")
    with pytest.raises(DataFormatError, match=r"g.csv, line 3: template 5 has subject 2"):
        read_1n_csv(path)
    path = write(tmp_path / "g.csv", "TEMPLATE_ID,SUBJECT_ID\n5;1\n")
    with pytest.raises(DataFormatError, match=r"line 2: expected comma-separated"):
        read_1n_csv(path)


def test_tables_must_agree(layout, tmp_path):
    meta_dir = os.path.join(layout, "IJBC", "meta")
    paths = ijb_paths(layout, "IJBC")
    copy = tmp_path / "IJBC" / "meta"
    copy.mkdir(parents=True)
    for name in os.listdir(meta_dir):
        with open(os.path.join(meta_dir, name)) as f:
            lines = f.readlines()
        if name == os.path.basename(paths["landmarks"]):
            lines[0], lines[1] = lines[1], lines[0]
        write(copy / name, "".join(lines))
    with pytest.raises(DataFormatError, match=r"image 1: '2.jpg' but .* has '1.jpg'"):
        load_ijb(str(tmp_path), "IJBC")
    with pytest.raises(FileNotFoundError, match="IJB_release layout"):
        load_ijb(str(tmp_path / "nowhere"), "IJBC")
    with pytest.raises(ValueError, match="unknown IJB target"):
        load_ijb(layout, "IJBA")
