"""MXNet RecordIO files: a fork-safe random-access reader and an atomic insightface-layout writer.

Physical format (dmlc RecordIO): each record is ``uint32 magic 0xced7230a``, ``uint32 lrecord``
(``cflag = lrecord >> 29``, ``length = lrecord & (2**29 - 1)``), ``length`` payload bytes and
zero padding to 4 bytes. A payload in which the magic number appears at a 4-byte aligned
position is split by the writer into parts (cflag 1 = first, 2 = middle, 3 = last) with the
magic dropped; the reader puts it back. ``train.idx`` lists ``key<TAB>byte offset`` per line.

Payload: the 24-byte ``IRHeader`` (``flag:uint32, label:float32, id:uint64, id2:uint64``), then
``flag`` float32 labels when ``flag > 0`` (array label), then the encoded image.

The reader uses ``os.pread`` with offsets from the ``.idx``: one system call per record, no
shared file position, and the descriptor is reopened in every new process (a descriptor
inherited across ``fork`` would otherwise be shared by all DataLoader workers).
"""
import os
import struct

import numpy as np

from ..utils.fileio import atomic_paths
from ._io import DataFormatError

__all__ = ["RECORD_MAGIC", "RecordFile", "unpack_payload", "pack_payload", "RecordWriter",
           "write_property", "read_property"]

RECORD_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", RECORD_MAGIC)
_LEN_MASK = (1 << 29) - 1
_IRHEADER = struct.Struct("<IfQQ")
#: Bytes read by the first ``pread`` of a record. Face crops take 5-30 KB, so one read almost
#: always gets the whole record; without a cap, the last record of a truncated ``.idx`` (whose
#: extent runs to the end of the ``.rec``) would be read in one call of gigabytes.
READ_CHUNK = 64 * 1024


def _pad4(n):
    return (n + 3) & ~3


def read_index(idx_path):
    """Parse a ``.idx`` file into (keys, offsets) int64 arrays in file order."""
    try:
        with open(idx_path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise DataFormatError(f"{idx_path}: cannot read the record index ({e})") from e
    tokens = text.split()
    if len(tokens) % 2:
        raise DataFormatError(f"{idx_path}: malformed index: expected 'key<TAB>offset' per "
                              "line, found an odd number of fields")
    try:
        table = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    except ValueError:
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if fields and (len(fields) != 2 or not all(x.lstrip(b"-").isdigit() for x in fields)):
                raise DataFormatError(f"{idx_path}:{lineno}: malformed index line {line[:60]!r}; "
                                      "expected 'key<TAB>offset'") from None
        raise
    if not len(table):
        raise DataFormatError(f"{idx_path}: the record index is empty")
    return table[:, 0].copy(), table[:, 1].copy()


class RecordFile:
    """Random access to the records of an indexed RecordIO file (``.rec`` + ``.idx``).

    Parameters
    ----------
    rec_path, idx_path : str
        The record file and its index.

    Notes
    -----
    Construction validates the index against the file: every offset must lie inside the
    ``.rec`` and the record at the largest offset must be complete (a truncated copy fails
    here, with the file named, rather than deep inside a training run).
    """

    def __init__(self, rec_path, idx_path):
        self.rec_path = str(rec_path)
        self.idx_path = str(idx_path)
        if not os.path.isfile(self.rec_path):
            raise DataFormatError(f"{self.rec_path}: record file not found")
        self.keys, self.offsets = read_index(self.idx_path)
        self.file_size = os.path.getsize(self.rec_path)
        bad = np.flatnonzero((self.offsets < 0) | (self.offsets + 8 > self.file_size))
        if len(bad):
            i = bad[0]
            raise DataFormatError(
                f"{self.idx_path}: key {self.keys[i]} points at byte {self.offsets[i]}, past the "
                f"end of {self.rec_path} ({self.file_size} bytes): the .rec is truncated or the "
                f".idx belongs to another file ({len(bad)} such keys)")
        # extent of each record = distance to the next indexed record: one pread per record
        order = np.argsort(self.offsets, kind="stable")
        sorted_off = self.offsets[order]
        ends = np.append(sorted_off[1:], self.file_size)
        self._extent = np.empty_like(self.offsets)
        self._extent[order] = ends - sorted_off
        # position of the record that follows each one in the file (-1: the last one)
        self._next_pos = np.empty_like(self.offsets)
        self._next_pos[order] = np.append(order[1:], -1)
        n = len(self.keys)
        if np.array_equal(self.keys, np.arange(self.keys[0], self.keys[0] + n)):
            self._dense_base = int(self.keys[0])
            self._sorted_keys = self._key_pos = None
        else:
            self._dense_base = None
            self._key_pos = np.argsort(self.keys, kind="stable")
            self._sorted_keys = self.keys[self._key_pos]
            dup = np.flatnonzero(np.diff(self._sorted_keys) == 0)
            if len(dup):
                raise DataFormatError(f"{self.idx_path}: key {self._sorted_keys[dup[0]]} is "
                                      "listed more than once")
        self._fd = None
        self._pid = None
        last = int(order[-1])
        self.read_position(last)  # a truncated tail shows up here

    # -- descriptor handling (per process) -------------------------------------------------
    def _handle(self):
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            # never close an inherited descriptor: the parent still uses it
            self._fd = os.open(self.rec_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self._pid = pid
        return self._fd

    def close(self):
        """Close this process's descriptor (it is reopened on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = state["_pid"] = None
        return state

    def _pread(self, size, offset):
        fd = self._handle()
        if hasattr(os, "pread"):
            return os.pread(fd, int(size), int(offset))
        os.lseek(fd, int(offset), os.SEEK_SET)  # pragma: no cover  (Windows)
        return os.read(fd, int(size))

    # -- lookup ---------------------------------------------------------------------------
    def __len__(self):
        return len(self.keys)

    def __contains__(self, key):
        return self._position(key, missing_ok=True) is not None

    def _position(self, key, missing_ok=False):
        key = int(key)
        if self._dense_base is not None:
            pos = key - self._dense_base
            if 0 <= pos < len(self.keys):
                return pos
        else:
            j = int(np.searchsorted(self._sorted_keys, key))
            if j < len(self._sorted_keys) and self._sorted_keys[j] == key:
                return int(self._key_pos[j])
        if missing_ok:
            return None
        raise DataFormatError(f"{self.idx_path}: record key {key} is not in the index")

    def positions(self, keys):
        """Index positions of many ``keys`` at once (vectorised ``_position``)."""
        keys = np.asarray(keys, dtype=np.int64)
        if self._dense_base is not None:
            pos = keys - self._dense_base
            ok = (pos >= 0) & (pos < len(self.keys))
        else:
            j = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
            ok = self._sorted_keys[j] == keys
            pos = self._key_pos[j]
        if not ok.all():
            raise DataFormatError(f"{self.idx_path}: record key {keys[~ok][0]} is not in the "
                                  f"index ({int((~ok).sum())} keys missing)")
        return pos

    def read(self, key):
        """Payload bytes of the record stored under ``key``."""
        return self.read_position(self._position(key))

    def read_position(self, pos):
        """Payload bytes of the ``pos``-th record listed in the index."""
        offset = int(self.offsets[pos])
        key = int(self.keys[pos])
        extent = int(self._extent[pos])
        buf = self._pread(min(extent, READ_CHUNK), offset)
        cflag, length = self._check_header(buf, offset, key)
        if cflag == 0:
            end = 8 + length
            if end > extent:
                self._overlap(pos, offset, key, length)
            if len(buf) < end:
                buf += self._read_exact(end - len(buf), offset + len(buf), key)
            return buf[8:end]
        if cflag != 1:
            raise DataFormatError(f"{self.rec_path}: record key {key} at byte {offset} starts "
                                  f"with continuation flag {cflag}: {self.idx_path} does not "
                                  "match the .rec")
        return self._read_split(pos, offset, key)

    def _overlap(self, pos, offset, key, length):
        nxt = int(self._next_pos[pos])
        if nxt < 0:  # unreachable: _check_header bounds the last record by the file size
            raise DataFormatError(f"{self.rec_path}: record key {key} at byte {offset} is "
                                  "truncated")
        raise DataFormatError(
            f"{self.rec_path}: record key {key} at byte {offset} declares {length} bytes, past "
            f"byte {int(self.offsets[nxt])} where {self.idx_path} says key {int(self.keys[nxt])} "
            "starts: the .idx belongs to another .rec (or the .rec is corrupt)")

    def _read_exact(self, size, offset, key):
        data = self._pread(size, offset)
        if len(data) < size:
            raise DataFormatError(f"{self.rec_path}: record key {key} is truncated: it needs "
                                  f"bytes up to {offset + size} but the file has "
                                  f"{self.file_size}")
        return data

    def _check_header(self, buf, offset, key):
        if len(buf) < 8:
            buf = self._read_exact(8, offset, key)
        magic, lrec = struct.unpack_from("<II", buf, 0)
        if magic != RECORD_MAGIC:
            raise DataFormatError(f"{self.rec_path}: no record starts at byte {offset} (key "
                                  f"{key}): bad magic 0x{magic:08x}; the .idx does not match "
                                  "the .rec or the file is corrupt")
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        if offset + 8 + length > self.file_size:
            raise DataFormatError(f"{self.rec_path}: record key {key} at byte {offset} is "
                                  f"truncated: it declares {length} bytes but the file ends at "
                                  f"{self.file_size}")
        return cflag, length

    def _read_split(self, index_pos, offset, key):
        parts = []
        pos = offset
        limit = offset + int(self._extent[index_pos])
        while True:
            head = self._read_exact(8, pos, key)
            cflag, length = self._check_header(head, pos, key)
            if pos + 8 + length > limit:
                self._overlap(index_pos, offset, key, pos + 8 + length - offset)
            parts.append(self._read_exact(length, pos + 8, key) if length else b"")
            pos += 8 + _pad4(length)
            if cflag == 3:
                break
            if pos >= self.file_size:
                raise DataFormatError(f"{self.rec_path}: split record key {key} at byte "
                                      f"{offset} has no final part (file truncated)")
        return _MAGIC_BYTES.join(parts)


def unpack_payload(payload, where):
    """Split a record payload into ``(flag, label, image_bytes)``.

    ``label`` is a float for ``flag == 0`` and a float32 array of ``flag`` values otherwise;
    ``where`` names the record in errors.
    """
    if len(payload) < _IRHEADER.size:
        raise DataFormatError(f"{where}: record payload of {len(payload)} bytes is shorter than "
                              f"the {_IRHEADER.size}-byte IRHeader")
    flag, label, _, _ = _IRHEADER.unpack_from(payload, 0)
    start = _IRHEADER.size
    if flag > 0:
        end = start + 4 * flag
        if flag > 1 << 16 or end > len(payload):
            raise DataFormatError(f"{where}: header announces {flag} float labels but the "
                                  f"payload has {len(payload)} bytes")
        label = np.frombuffer(payload, dtype="<f4", count=flag, offset=start)
        start = end
    return flag, label, payload[start:]


def pack_payload(label, image_bytes, key=0):
    """Build a record payload like ``mx.recordio.pack``: IRHeader, array labels, image.

    A scalar ``label`` goes in the header (flag 0); a sequence is stored after the header as
    float32 values with ``flag = len(label)`` and a header label of 0.
    """
    if np.ndim(label) == 0:
        head = _IRHEADER.pack(0, float(label), int(key), 0)
        return head + bytes(image_bytes)
    values = np.asarray(label, dtype="<f4").ravel()
    head = _IRHEADER.pack(len(values), 0.0, int(key), 0)
    return head + values.tobytes() + bytes(image_bytes)


def write_property(path, num_classes, image_size):
    """Write an insightface ``property`` file: ``num_classes,h,w``."""
    h, w = image_size
    with open(path, "w") as f:
        f.write(f"{int(num_classes)},{int(h)},{int(w)}\n")


def read_property(path):
    """Parse the first line of an insightface ``property`` file into (num_classes, (h, w)).

    Later lines (``rec2shufrec`` writes an image count, ``shuffled`` and a date) are ignored.
    """
    try:
        with open(path, "rb") as f:
            raw = f.readline(4096)
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read the dataset property file ({e}); expected "
                              "a first line 'num_classes,height,width'") from e
    try:
        first = raw.decode("ascii")
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: the first line {raw[:80]!r} is not ASCII text; expected "
                              "'num_classes,height,width', e.g. '85742,112,112'") from None
    fields = [x.strip() for x in first.strip().split(",")]
    try:
        values = [int(x) for x in fields]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) <= 0:
        raise DataFormatError(f"{path}: malformed first line {first.strip()[:80]!r}; expected "
                              "'num_classes,height,width' (positive integers), e.g. "
                              "'85742,112,112'")
    return values[0], (values[1], values[2])


class RecordWriter:
    """Write an insightface-layout ``train.rec`` / ``train.idx`` / ``property`` atomically.

    Images must arrive grouped by identity in label order 0, 1, 2, ... (each label's images
    contiguous). With ``header=True`` (insightface's layout) image keys run 1..N, identity
    records N+1..N+C hold each label's ``[begin, end)`` image-key range and key 0 holds
    ``[N+1, N+1+C)``. With ``header=False`` (a "shuffled rec" as ``rec2shufrec`` makes) image
    keys run 0..N-1 and there are no header or identity records.

    The three files are written under temporary names in ``out_dir`` and renamed into place
    by :meth:`close`; if the ``with`` body raises, nothing is left behind.

    Parameters
    ----------
    out_dir : str
        Destination folder (created if needed).
    image_size : (int, int)
        (height, width) stored in ``property``.
    header : bool
        Write the key-0 header and identity records.
    array_labels : bool
        Store image labels as ``[label, 0]`` float arrays (the old ``face2rec2`` packs) instead
        of a scalar header label.
    prefix : str
        File stem: ``<prefix>.rec`` / ``<prefix>.idx``.
    """

    def __init__(self, out_dir, image_size=(112, 112), header=True, array_labels=False,
                 prefix="train"):
        from mxnet import recordio  # dmlc's writer (splits payloads at the magic number)

        self.out_dir = str(out_dir)
        self.image_size = tuple(int(x) for x in image_size)
        self.header = bool(header)
        self.array_labels = bool(array_labels)
        self.paths = {"rec": os.path.join(self.out_dir, prefix + ".rec"),
                      "idx": os.path.join(self.out_dir, prefix + ".idx"),
                      "property": os.path.join(self.out_dir, "property")}
        self._atomic = atomic_paths(self.paths["rec"], self.paths["idx"],
                                    self.paths["property"])
        self._tmp_rec, self._tmp_idx, self._tmp_prop = self._atomic.__enter__()
        self._io = recordio.MXIndexedRecordIO(self._tmp_idx, self._tmp_rec, "w")
        self._ranges = []  # per label: [first key, end key)
        self._next_key = 1 if self.header else 0
        self.num_images = 0
        self._closed = False

    def add(self, label, image_bytes):
        """Append one encoded image of identity ``label``."""
        label = int(label)
        current = len(self._ranges) - 1
        if label == current + 1:
            self._ranges.append([self._next_key, self._next_key])
        elif label != current:
            raise ValueError(f"RecordWriter: images must come grouped by label in order "
                             f"0, 1, 2, ...; got label {label} after label {current}")
        key = self._next_key
        lab = [float(label), 0.0] if self.array_labels else float(label)
        self._io.write_idx(key, pack_payload(lab, image_bytes, key))
        self._ranges[-1][1] = key + 1
        self._next_key += 1
        self.num_images += 1

    @property
    def num_classes(self):
        return len(self._ranges)

    def close(self):
        """Write identity and header records and ``property``; move the files into place."""
        if self._closed:
            return self.paths
        if not self.num_images:
            self.abort()
            raise ValueError(f"RecordWriter: no images were added; nothing written to "
                             f"{self.out_dir}")
        if self.header:
            n, c = self.num_images, self.num_classes
            for label, (begin, end) in enumerate(self._ranges):
                key = n + 1 + label
                self._io.write_idx(key, pack_payload([begin, end], b"", key))
            self._io.write_idx(0, pack_payload([n + 1, n + 1 + c], b"", 0))
        self._io.close()
        write_property(self._tmp_prop, self.num_classes, self.image_size)
        self._closed = True
        self._atomic.commit()
        return self.paths

    def abort(self):
        """Discard everything written so far."""
        if self._closed:
            return
        self._closed = True
        try:
            self._io.close()
        finally:
            self._atomic.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
