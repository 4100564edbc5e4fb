"""The one atomic-write helper (gluonfr.utils.fileio): old file intact on failure, no
temporary left behind, data and folder fsynced, several files renamed in the given order."""
import os
import stat
import subprocess
import sys
import textwrap

from gluonfr.utils.fileio import atomic_open, atomic_paths

import cv2
import numpy as np
import pytest

FILEIO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "gluonfr", "utils", "fileio.py")


def test_atomic_open_replaces_on_success_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"  # the folder is created
    with atomic_open(target, "w", encoding="utf-8") as f:
        f.write('{"a": 1}')
        # nothing at the destination until the block completes
        assert not target.exists()
    assert target.read_text(encoding="utf-8") == '{"a": 1}'
    assert os.listdir(tmp_path / "sub") == ["out.json"]
    plain = tmp_path / "sub" / "plain"
    plain.write_bytes(b"")  # what an ordinary open gives (umask applied), not mkstemp's 0600
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_exception_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "model.params"
    target.write_bytes(b"old content")
    with pytest.raises(OSError, match="disk full"):
        with atomic_open(target) as f:
            f.write(b"half of the new")
            raise OSError("disk full")
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["model.params"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C too
        with atomic_paths(target) as (tmp,):
            with open(tmp, "wb") as f:
                f.write(b"new")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["model.params"]


def test_killed_writer_leaves_the_old_file_intact(tmp_path):
    # a process killed mid-write cannot clean up; the destination must still be the old file
    target = tmp_path / "report.json"
    target.write_text("old")
    code = textwrap.dedent(f"""
        import importlib.util, os
        spec = importlib.util.spec_from_file_location("fileio", {FILEIO!r})
        fileio = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fileio)
        with fileio.atomic_open({str(target)!r}, "w") as f:
            f.write("new, but only half")
            f.flush()
            os._exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert target.read_text() == "old"
    left = sorted(set(os.listdir(tmp_path)) - {"report.json"})
    # what remains is one hidden temporary beside it, named after the destination
    assert len(left) == 1 and left[0].startswith(".report.json.") and left[0].endswith(".json")


def test_data_then_folder_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append((kind, os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "a.bin"
    with atomic_open(target) as f:
        f.write(b"payload")
    kinds = [e[0] for e in events]
    assert kinds == ["file", "replace", "dir"]
    assert events[0][1] == target.stat().st_ino      # the data that was renamed
    assert events[2][1] == tmp_path.stat().st_ino    # its folder


def test_atomic_paths_renames_in_the_given_order_after_all_are_written(tmp_path, monkeypatch):
    order = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace",
                        lambda src, dst: (order.append(os.path.basename(dst)),
                                          real_replace(src, dst)))
    names = ["m-1.params", "m-1-head.params", "m-1.states", "m-1.json"]
    with atomic_paths(*(tmp_path / n for n in names)) as temps:
        assert len(temps) == 4 and len(set(temps)) == 4
        for tmp, n in zip(temps, names):
            # beside the destination, with its extension (writers pick formats from it)
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(os.path.splitext(n)[1])
            with open(tmp, "w") as f:
                f.write(n)
        assert order == []  # nothing moves before the block ends
    assert order == names
    assert sorted(os.listdir(tmp_path)) == sorted(names)
    assert all((tmp_path / n).read_text() == n for n in names)


def test_atomic_paths_failure_after_some_files_writes_none(tmp_path):
    (tmp_path / "train.rec").write_bytes(b"old rec")
    with pytest.raises(ValueError, match="bad record"):
        with atomic_paths(tmp_path / "train.rec", tmp_path / "train.idx") as (rec, idx):
            with open(rec, "wb") as f:
                f.write(b"new rec")
            raise ValueError("bad record")
    assert os.listdir(tmp_path) == ["train.rec"]
    assert (tmp_path / "train.rec").read_bytes() == b"old rec"


def test_atomic_paths_with_a_library_that_wants_a_path(tmp_path):
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    with atomic_paths(tmp_path / "grid.png") as (tmp,):
        assert cv2.imwrite(tmp, img)  # cv2 picks PNG from the temporary's extension
    assert np.array_equal(cv2.imread(str(tmp_path / "grid.png")), img)
    with atomic_paths(tmp_path / "e.npz") as (tmp,):
        np.savez(tmp, x=img)  # np.savez would append .npz to a name without it
    assert sorted(os.listdir(tmp_path)) == ["e.npz", "grid.png"]
    assert np.array_equal(np.load(tmp_path / "e.npz")["x"], img)


def test_writer_that_removes_its_file_and_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.bin"):
        with atomic_paths(tmp_path / "gone.bin") as (tmp,):
            os.remove(tmp)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="mode 'r'"):
        with atomic_open(tmp_path / "x", "r"):
            pass
    with pytest.raises(ValueError, match="at least one"):
        atomic_paths()
    assert os.listdir(tmp_path) == []
