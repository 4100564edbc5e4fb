"""Readers and loader under damaged data: capped reads, strict decoding, skipping corrupt
records, worker processes that die with their parent, and a fuzz run over every reader."""
import json
import os
import signal
import subprocess
import sys
import time

import gluonfr  # noqa: F401
from gluonfr.data import (
    DataFormatError,
    FaceRecordDataset,
    image,
    load_bin,
    make_train_loader,
    pack_bin,
    recordio,
)
from gluonfr.data.recordio import RecordFile, RecordWriter

import cv2
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def noisy_jpeg(rng, size=112):
    """A JPEG of noise: ~15 KB at 112 px, so byte flips land in the entropy-coded data."""
    img = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def write_rec(root, images, header=False, size=112):
    with RecordWriter(str(root), image_size=(size, size), header=header) as w:
        for label, data in images:
            w.add(label, data)
    return str(root)


def flipped_variants(data, count, seed):
    """Copies of a JPEG with one byte of its entropy-coded data inverted."""
    rng = np.random.default_rng(seed)
    start = data.index(b"\xff\xda") + 20  # past the start-of-scan header
    out = []
    for _ in range(count):
        buf = bytearray(data)
        buf[int(rng.integers(start, len(buf) - 2))] ^= 0xFF
        out.append(bytes(buf))
    return out


# -- capped reads ---------------------------------------------------------------------------
def test_truncated_idx_reads_are_capped_and_records_still_read(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = [(k // 4, noisy_jpeg(rng)) for k in range(24)]
    write_rec(tmp_path, images)
    full = RecordFile(tmp_path / "train.rec", tmp_path / "train.idx")
    expected = [full.read(k) for k in range(3)]
    idx = tmp_path / "train.idx"
    idx.write_text("".join(idx.read_text().splitlines(keepends=True)[:3]))  # lost its tail
    sizes = []
    real = os.pread
    monkeypatch.setattr(recordio.os, "pread",
                        lambda fd, n, off: sizes.append(n) or real(fd, n, off))
    short = RecordFile(tmp_path / "train.rec", idx)
    assert [short.read(k) for k in range(3)] == expected
    # the last indexed record's extent is the rest of the file (~330 KB); nothing reads it whole
    assert os.path.getsize(tmp_path / "train.rec") > 4 * recordio.READ_CHUNK
    assert max(sizes) <= recordio.READ_CHUNK


def test_foreign_idx_errors_name_the_record_key_and_file(tmp_path):
    rng = np.random.default_rng(1)
    small = [(0, noisy_jpeg(rng, 48)), (0, noisy_jpeg(rng, 48)), (1, noisy_jpeg(rng, 48))]
    big = [small[0], (0, noisy_jpeg(rng, 112)), small[2], (1, noisy_jpeg(rng, 48))]
    write_rec(tmp_path / "a", small)
    write_rec(tmp_path / "b", big)
    with pytest.raises(DataFormatError, match=r"b/train\.rec: .*\(key 2\): bad magic"):
        RecordFile(tmp_path / "b" / "train.rec", tmp_path / "a" / "train.idx")
    # an index whose key 2 points into record 1 (keys 0, 1 and 3 are right)
    idx = tmp_path / "b" / "train.idx"
    lines = idx.read_text().splitlines()
    offset1 = int(lines[1].split("\t")[1])
    lines[2] = f"2\t{offset1 + 1000}"
    idx.write_text("\n".join(lines) + "\n")
    records = RecordFile(tmp_path / "b" / "train.rec", idx)
    assert len(records.read(0)) > 24 and len(records.read(3)) > 24
    with pytest.raises(DataFormatError,
                       match=r"b/train\.rec: record key 1 .*train\.idx says key 2 starts"):
        records.read(1)
    with pytest.raises(DataFormatError, match=r"b/train\.rec.*key 2.*bad magic"):
        records.read(2)


def test_property_with_non_utf8_bytes_names_the_file(tmp_path):
    rng = np.random.default_rng(2)
    write_rec(tmp_path, [(0, noisy_jpeg(rng, 32))], size=32)
    (tmp_path / "property").write_bytes(b"1,3\xff\xfe2,32\n")
    with pytest.raises(DataFormatError, match=r"property: .*not ASCII text"):
        FaceRecordDataset(str(tmp_path))


# -- strict decoding -------------------------------------------------------------------------
def test_strict_decode_turns_libjpeg_warnings_into_errors(capfd):
    rng = np.random.default_rng(3)
    clean = [noisy_jpeg(rng) for _ in range(3)]
    for data in clean:  # no false alarms, the same pixels
        np.testing.assert_array_equal(image.decode_image(data, "x", "bgr", strict=True),
                                      image.decode_image(data, "x", "bgr"))
    caught = silent = 0
    for data in flipped_variants(clean[0], 20, seed=4):
        # decodes to wrong pixels, warns on stderr only
        lenient = image.decode_image(data, "x", "bgr")
        assert lenient.shape == (112, 112, 3)
        try:
            strict = image.decode_image(data, "pos 7", "bgr", strict=True)
        except DataFormatError as err:
            assert str(err).startswith("pos 7: corrupt image data (libjpeg: Corrupt JPEG")
            caught += 1
        else:
            np.testing.assert_array_equal(strict, lenient)
            silent += 1
    assert caught >= 10, (caught, silent)
    os.write(2, b"stderr still works\n")
    err = capfd.readouterr().err
    assert "stderr still works" in err
    # strict decodes kept libjpeg's messages for their errors; lenient ones print them as before
    assert err.count("Corrupt JPEG data") == caught


def test_verify_strict_and_loader_strict_name_the_key(tmp_path):
    rng = np.random.default_rng(5)
    good = noisy_jpeg(rng)
    bad = next(v for v in flipped_variants(good, 20, seed=6)
               if _decode_fails_strictly(v))
    write_rec(tmp_path, [(0, good), (0, bad), (1, noisy_jpeg(rng)), (1, noisy_jpeg(rng))])
    ds = FaceRecordDataset(str(tmp_path))
    assert ds.verify() == 4  # lenient: wrong pixels pass
    with pytest.raises(DataFormatError, match=r"train\.rec record key 1: corrupt image data"):
        ds.verify(strict=True)
    with pytest.raises(DataFormatError, match=r"record key 1: corrupt"):
        list(make_train_loader(ds, batch_size=2, shuffle=False, strict=True))
    assert len(list(make_train_loader(ds, batch_size=2, shuffle=False))) == 2


def _decode_fails_strictly(data):
    try:
        image.decode_image(data, "probe", "bgr", strict=True)
    except DataFormatError:
        return True
    return False


# -- skipping corrupt records ----------------------------------------------------------------
@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """8 images, labels 0..3; records 3 and 6 (keys) are junk."""
    root = tmp_path_factory.mktemp("damaged")
    rng = np.random.default_rng(7)
    items = [(k // 2, b"junk bytes" if k in (3, 6) else noisy_jpeg(rng, 32)) for k in range(8)]
    write_rec(root, items, size=32)
    return str(root)


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_corrupt_replaces_up_to_n_records_and_logs_their_keys(damaged, workers, caplog):
    ds = FaceRecordDataset(damaged)
    with pytest.raises(DataFormatError, match=r"record key 3: cannot decode"):
        list(make_train_loader(ds, batch_size=4, shuffle=False, flip=False,
                               num_workers=workers))
    caplog.set_level("WARNING")
    loader = make_train_loader(ds, batch_size=4, shuffle=False, flip=False,
                               num_workers=workers, skip_corrupt=2)
    with loader:
        batches = [(d.asnumpy(), lab.asnumpy()) for d, lab in loader]
    assert sorted(loader.skipped) == [3, 6]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "record key 3" in logged and "record key 6" in logged
    # a bad record is replaced by the next readable one (the same in every run)
    data = np.concatenate([d for d, _ in batches])
    labels = np.concatenate([lab for _, lab in batches])
    substitute = {3: 4, 6: 7}
    for i in range(8):
        src = substitute.get(i, i)
        img, label = ds.decode(src)
        np.testing.assert_array_equal(data[i], img.transpose(2, 0, 1))
        assert labels[i] == label
    with pytest.raises(DataFormatError, match=r"more than --skip-corrupt 1 .*keys 3, 6"):
        list(make_train_loader(ds, batch_size=4, shuffle=False, num_workers=workers,
                               skip_corrupt=1))


# -- worker processes and a dead parent -----------------------------------------------------
_ORPHAN_PARENT = """
import json, sys, time
import gluonfr
from gluonfr.data import make_train_loader
loader = make_train_loader(sys.argv[1], batch_size=2, num_workers=2)
next(iter(loader))
print(json.dumps([p.pid for p in loader._workers]), flush=True)
time.sleep(120)
"""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_loader_workers_exit_when_the_trainer_is_killed(damaged, tmp_path):
    ok = tmp_path / "ok"
    rng = np.random.default_rng(8)
    write_rec(ok, [(k // 2, noisy_jpeg(rng, 32)) for k in range(8)], size=32)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_PARENT, str(ok)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(proc.stdout.readline())
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 8
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"loader workers {left} outlived their killed parent"


# -- fuzzing ---------------------------------------------------------------------------------
def _damage(data, rng):
    buf = bytearray(data)
    kind = int(rng.integers(3))
    if kind == 0:  # a few flipped bytes
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncation
        del buf[int(rng.integers(len(buf))):]
    else:  # a zeroed run
        start = int(rng.integers(len(buf)))
        end = min(len(buf), start + int(rng.integers(1, 64)))
        buf[start:end] = bytes(end - start)
    return bytes(buf)


def _load_all(path, strict):
    if path.endswith(".bin"):
        load_bin(path, image_size=(32, 32), strict=strict)
        return
    ds = FaceRecordDataset(os.path.dirname(path))
    ds.verify(strict=strict)


def test_fuzzed_readers_fail_cleanly_naming_the_file(tmp_path):
    rng = np.random.default_rng(9)
    clean = tmp_path / "clean"
    write_rec(clean, [(k // 2, noisy_jpeg(rng, 32)) for k in range(6)], header=True, size=32)
    pack_bin([(noisy_jpeg(rng, 32), noisy_jpeg(rng, 32), k % 2 == 0) for k in range(3)],
             str(clean / "lfw.bin"))
    names = ["train.rec", "train.idx", "property", "lfw.bin"]
    originals = {n: (clean / n).read_bytes() for n in names}
    work = tmp_path / "work"
    work.mkdir()
    for n in names:
        (work / n).write_bytes(originals[n])
    fuzz = np.random.default_rng(10)
    silent = {True: 0, False: 0}

    def timeout(*_):
        raise TimeoutError("a damaged file made a reader hang")

    old = signal.signal(signal.SIGALRM, timeout)
    t0 = time.time()
    try:
        for case in range(300):
            name = names[case % 4]
            path = str(work / name)
            with open(path, "wb") as f:
                f.write(_damage(originals[name], fuzz))
            for strict in (False, True):
                signal.alarm(10)
                try:
                    _load_all(str(work / "lfw.bin") if name == "lfw.bin"
                              else str(work / "train.rec"), strict)
                    silent[strict] += 1
                except DataFormatError as err:
                    # the damaged file, or the one where its damage shows (a bad .idx entry
                    # is found reading the .rec)
                    named = [n for n in names if str(work / n) in str(err)]
                    assert named, (case, name, str(err))
                finally:
                    signal.alarm(0)
            with open(path, "wb") as f:
                f.write(originals[name])
    finally:
        signal.signal(signal.SIGALRM, old)
    assert time.time() - t0 < 60
    assert silent[True] < silent[False]
