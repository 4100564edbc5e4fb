"""The training loader: ready NCHW float32 batches, reproducible and resumable.

Determinism contract (what makes ``--resume`` exact):

* the order of epoch ``e`` is ``numpy.random.Generator(PCG64(SeedSequence([seed, e])))
  .permutation(len(dataset))`` (or ``arange`` without shuffling);
* batch ``b`` of epoch ``e`` holds positions ``b*B .. b*B+B-1`` of that order;
* every random augmentation of a sample (flip, jitter, crop) comes from
  :func:`~gluonfr.data.transforms.sample_uniforms` ``(seed, e, dataset index)``.

So a batch is a pure function of ``(seed, epoch, batch index)``: it is the same with 0 or N
workers, and ``loader.set_epoch(e, start_batch=b)`` (or ``iter_epoch(e, b)``) continues an
interrupted run with exactly the batches it would have seen.

Speed: gluon's ``DataLoader`` moves one NDArray per sample between processes, and that IPC is
what made gluon-face slower with workers than without. Here the sampler hands a worker a whole
batch of indices; the worker reads records with ``os.pread``, decodes with ``cv2.imdecode``,
flips, and returns one uint8 NHWC numpy batch; the main process converts it to float32 NCHW
in one numpy pass and wraps it as an NDArray without a copy.
"""
import ctypes
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import traceback

import cv2
import numpy as np

from ._io import DataFormatError
from .image import decode_image
from .record_dataset import FaceRecordDataset
from .transforms import TrainAugmentation, sample_uniforms, to_nchw_float32

__all__ = ["ShardedTrainLoader", "TrainLoader", "make_train_loader", "epoch_permutation",
           "load_batch"]


def epoch_permutation(num_samples, seed, epoch, shuffle=True):
    """The sample order of ``epoch`` (a pure function of ``seed`` and ``epoch``)."""
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    ss = np.random.SeedSequence([int(seed), int(epoch)])
    return np.random.Generator(np.random.PCG64(ss)).permutation(num_samples).astype(np.int64)


#: How many following records a corrupt one may be replaced by before the batch fails.
_MAX_SUBSTITUTES = 64


def _record_key(dataset, i):
    keys = getattr(dataset, "keys", None)
    return int(keys[i]) if keys is not None else int(i)


def load_batch(dataset, indices, augmentation, seed, epoch, image_size, out=None,
               strict=False, skipped=None):
    """Read, decode and augment the samples ``indices`` into one uint8 NHWC RGB batch.

    Returns ``(images (N, H, W, 3) uint8, labels (N,) int64)``; ``images`` is ``out[:N]``
    when a buffer is given. Pure: the result depends on the arguments only, never on global
    RNG state or on the calling process.

    Parameters
    ----------
    strict : bool
        Reject images the decoder only warns about (see :func:`gluonfr.data.image.decode_image`).
    skipped : list, optional
        When given, a sample whose record is corrupt (:class:`DataFormatError`) is replaced by
        the next readable record in dataset order, and ``(record key, message)`` of each
        corrupt record is appended to this list. The replacement keeps the sample's
        augmentation draws, so the batch stays a pure function of the arguments.
    """
    h, w = image_size
    n = len(indices)
    images = np.empty((n, h, w, 3), dtype=np.uint8) if out is None else out[:n]
    labels = np.empty(n, dtype=np.int64)
    u = sample_uniforms(seed, epoch, indices, augmentation.num_uniforms)
    flips = augmentation.flips(u)
    for j, i in enumerate(indices):
        if skipped is None:
            labels[j] = _load_sample(dataset, int(i), images[j], u[j], flips[j], augmentation,
                                     image_size, strict)
            continue
        size = len(dataset)
        for step in range(min(_MAX_SUBSTITUTES, size)):
            src = (int(i) + step) % size
            try:
                labels[j] = _load_sample(dataset, src, images[j], u[j], flips[j],
                                         augmentation, image_size, strict)
                break
            except DataFormatError as err:
                skipped.append((_record_key(dataset, src), str(err)))
        else:
            raise DataFormatError(f"sample {int(i)} and the {min(_MAX_SUBSTITUTES, size) - 1} "
                                  f"records after it are all corrupt; last error: "
                                  f"{skipped[-1][1]}")
    return images, labels


def _load_sample(dataset, i, dst, u, flip, augmentation, image_size, strict):
    """Decode sample ``i`` of ``dataset`` into ``dst`` (H, W, 3) RGB; returns its label."""
    h, w = image_size
    # raw records are decoded here unless the dataset has its own (NDArray) transform
    if isinstance(dataset, FaceRecordDataset) and dataset.transform is None:
        buf, label = dataset.read(i)
        bgr = decode_image(buf, f"{dataset.records.rec_path} record key {int(dataset.keys[i])}",
                           "bgr", strict)
        if bgr.shape[:2] != (h, w):
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        if augmentation.pixel_ops:
            dst[...] = augmentation(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), u)
        else:
            # cv2 flips and swaps channels straight into the batch: numpy's reversed strides
            # are much slower (docs/performance.rst)
            cv2.cvtColor(cv2.flip(bgr, 1) if flip else bgr, cv2.COLOR_BGR2RGB, dst=dst)
        return label
    img, label = dataset[i]
    img = img.asnumpy() if hasattr(img, "asnumpy") else np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"dataset item {i}: expected an HWC uint8 RGB image, got "
                         f"dtype {img.dtype} and shape {img.shape}")
    if img.shape[:2] != (h, w):
        img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_LINEAR)
    dst[...] = augmentation(img, u) if augmentation.pixel_ops else (img[:, ::-1] if flip else img)
    return int(label)


def _worker_loop(dataset, augmentation, seed, image_size, slots, tasks, results, strict,
                 skip):
    # no cv2.setNumThreads here: after a fork, OpenCV's thread pool is a copy whose threads
    # do not exist, and reconfiguring it can hang for ever; _start_workers forks with the
    # pool already shrunk to one thread instead
    while True:
        task = tasks.get()
        if task is None:
            return
        tag, epoch, indices, slot = task
        skipped = [] if skip else None
        try:
            # images go straight into shared memory; only labels travel through the queue
            _, labels = load_batch(dataset, indices, augmentation, seed, epoch, image_size,
                                   out=slots[slot], strict=strict, skipped=skipped)
            results.put((tag, labels, skipped, None))
        except Exception as e:  # noqa: BLE001  (reported to the main process)
            results.put((tag, None, skipped, (isinstance(e, DataFormatError), str(e),
                                              traceback.format_exc())))


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid, kernel_signal):
    """End this worker when the training process dies, even by ``kill -9``.

    A worker blocked on its task queue would otherwise live for ever with its shared batch
    buffers (``daemon=True`` only helps when the parent exits normally). On Linux the kernel
    sends SIGKILL when the parent thread that forked us ends (asked for only when that thread
    is the main one: a worker thread may end while the process lives on); everywhere a
    watchdog thread also polls the parent's pid, which changes when the parent is gone.
    """
    if kernel_signal and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            threading.Event().wait(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="gluonfr-parent-watchdog", daemon=True).start()


def _worker_entry(dataset, augmentation, seed, image_size, raw, prefetch, batch_size, tasks,
                  results, strict=False, skip=False, parent_pid=None, kernel_signal=False):
    if parent_pid is not None:
        _die_with_parent(parent_pid, kernel_signal)
    slots = _slot_view(raw, prefetch, batch_size, image_size)
    _worker_loop(dataset, augmentation, seed, image_size, slots, tasks, results, strict, skip)


def _slot_view(raw, prefetch, batch_size, image_size):
    h, w = image_size
    return np.frombuffer(raw, dtype=np.uint8).reshape(prefetch, batch_size, h, w, 3)


class TrainLoader:
    """Iterate training batches ``(data, label)`` of a face dataset.

    Build it with :func:`make_train_loader`. ``data`` is an (N, 3, H, W) float32 NDArray in
    0..255 RGB (the networks normalise inside), ``label`` an (N,) NDArray of exact class ids.

    ``for data, label in loader`` runs the current epoch (from ``start_batch``) and, once it
    has run to the end, advances to the next (breaking out early keeps the position);
    ``iter_epoch(epoch, start_batch)`` runs a given one. See the module docstring for the
    determinism contract.

    With ``skip_corrupt=N`` a corrupt record is replaced by the next readable one and logged
    (key and reason) once; :attr:`skipped` maps the keys skipped so far to the reason, and
    the run stops with :class:`DataFormatError` when more than N distinct records were bad.
    ``strict=True`` also rejects images the JPEG decoder only warns about.

    ``batch_sampler`` (e.g. :class:`gluonfr.data.PKSampler`, identity-balanced batches for
    triplet losses) replaces the epoch permutation: its ``epoch_batches(epoch)`` are the
    batches, ``len(batch_sampler)`` the batches per epoch, and ``batch_size`` must be its
    ``batch_size``.
    """

    def __init__(self, dataset, batch_size, num_workers=0, seed=0, augmentation=None,
                 last_batch="discard", shuffle=True, label_dtype="float32", prefetch=2,
                 image_size=None, mp_context=None, strict=False, skip_corrupt=0, logger=None,
                 batch_sampler=None):
        if batch_sampler is not None and int(batch_size) != batch_sampler.batch_size:
            raise ValueError(f"batch_size {batch_size} != the batch sampler's "
                             f"{batch_sampler.batch_size} (p={batch_sampler.p} x "
                             f"k={batch_sampler.k})")
        self.batch_sampler = batch_sampler
        if int(batch_size) <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if last_batch not in ("discard", "keep"):
            raise ValueError(f"last_batch must be 'discard' or 'keep', got {last_batch!r} "
                             "('rollover' would make a batch depend on the previous epoch)")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if int(skip_corrupt) < 0:
            raise ValueError(f"skip_corrupt must be >= 0, got {skip_corrupt}")
        self.strict = bool(strict)
        self.skip_corrupt = int(skip_corrupt)
        self.skipped = {}
        self.logger = logger or logging.getLogger(__name__)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.augmentation = augmentation or TrainAugmentation(flip=True)
        self.last_batch = last_batch
        self.shuffle = bool(shuffle)
        self.label_dtype = label_dtype
        self.prefetch = max(1, int(prefetch))
        if image_size is None:
            image_size = getattr(dataset, "image_size", None)
        if image_size is None:
            img, _ = dataset[0]
            image_size = tuple(img.shape[:2])
        self.image_size = tuple(int(x) for x in image_size)
        self.num_samples = len(dataset)
        if len(self) == 0:
            raise ValueError(f"a dataset of {self.num_samples} images gives no batch of "
                             f"{self.batch_size} with last_batch='discard'")
        self._mp_context = mp_context
        self._workers = []
        self._tasks = []
        self._results = []
        self._slots = []
        self._generation = 0
        self.epoch = 0
        self.start_batch = 0

    def __len__(self):
        """Batches per epoch."""
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        if self.last_batch == "discard":
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    @property
    def num_classes(self):
        return getattr(self.dataset, "num_classes", None)

    def set_epoch(self, epoch, start_batch=0):
        """Make the next ``for`` loop run ``epoch`` starting at batch ``start_batch``."""
        if not 0 <= int(start_batch) <= len(self):
            raise ValueError(f"start_batch {start_batch} outside [0, {len(self)}]")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def epoch_batches(self, epoch, start_batch=0):
        """Dataset indices of the batches ``start_batch, start_batch+1, ...`` of ``epoch``.

        The one place that decides which samples a batch holds; :meth:`iter_epoch` loads
        exactly these, and :class:`ShardedTrainLoader` takes its slice of each.
        """
        nb = len(self)
        if not 0 <= int(start_batch) <= nb:
            raise ValueError(f"start_batch {start_batch} outside [0, {nb}]")
        if self.batch_sampler is not None:
            return self.batch_sampler.epoch_batches(epoch)[int(start_batch):]
        perm = epoch_permutation(self.num_samples, self.seed, epoch, self.shuffle)
        bs = self.batch_size
        return [perm[b * bs:(b + 1) * bs] for b in range(int(start_batch), nb)]

    def batch_indices(self, epoch, batch):
        """Dataset indices of batch ``batch`` of ``epoch``."""
        return self.epoch_batches(epoch, batch)[0]

    def __iter__(self):
        epoch, start = self.epoch, self.start_batch
        yield from self.iter_epoch(epoch, start)
        self.epoch, self.start_batch = epoch + 1, 0

    def iter_epoch(self, epoch, start_batch=0):
        """Yield the batches ``start_batch, start_batch+1, ...`` of ``epoch``."""
        import mxnet as mx

        chunks = self.epoch_batches(epoch, start_batch)
        for images, labels in self._produce(int(epoch), chunks):
            data = mx.nd.from_numpy(to_nchw_float32(images), zero_copy=True)
            yield data, mx.nd.array(labels, dtype=self.label_dtype)

    # -- production ---------------------------------------------------------------------
    def _produce(self, epoch, chunks):
        if self.num_workers == 0:
            for idx in chunks:
                skipped = [] if self.skip_corrupt else None
                try:
                    batch = load_batch(self.dataset, idx, self.augmentation, self.seed, epoch,
                                       self.image_size, strict=self.strict, skipped=skipped)
                finally:
                    self._note_skipped(skipped)
                yield batch
            return
        self._start_workers()
        self._generation += 1
        gen = self._generation
        nw, pf = self.num_workers, self.prefetch

        def submit(k):
            # batch k uses slot (k // nw) % pf of worker k % nw; it is only reused by batch
            # k + nw*pf, which is submitted after batch k has been copied out
            self._tasks[k % nw].put(((gen, k), epoch, chunks[k], (k // nw) % pf))

        window = min(nw * pf, len(chunks))
        for k in range(window):
            submit(k)
        for k in range(len(chunks)):
            w = k % nw
            labels = self._receive(w, (gen, k))
            images = self._slots[w][(k // nw) % pf][:len(chunks[k])]
            yield images, labels  # consumed (converted) before the next submit
            if k + window < len(chunks):
                submit(k + window)

    def _receive(self, w, tag):
        while True:
            try:
                got, labels, skipped, err = self._results[w].get(timeout=2.0)
            except queue.Empty:
                proc = self._workers[w]
                if not proc.is_alive():
                    self.close()
                    raise RuntimeError(f"training loader worker {w} died (exit code "
                                       f"{proc.exitcode})") from None
                continue
            if got != tag:
                continue  # left over from an epoch the caller stopped early
            self._note_skipped(skipped)
            if err is not None:
                is_format, msg, tb = err
                if is_format:
                    raise DataFormatError(msg)
                raise RuntimeError(f"training loader worker {w} failed:\n{tb}")
            return labels

    def _note_skipped(self, skipped):
        """Log newly skipped records; raise once more than ``skip_corrupt`` were bad."""
        for key, msg in skipped or ():
            if key not in self.skipped:
                self.skipped[key] = msg
                self.logger.warning(f"skipped corrupt record ({len(self.skipped)} of at most "
                                    f"{self.skip_corrupt}): {msg}")
        if self.skip_corrupt and len(self.skipped) > self.skip_corrupt:
            keys = ", ".join(str(k) for k in sorted(self.skipped)[:20])
            raise DataFormatError(f"more than --skip-corrupt {self.skip_corrupt} corrupt "
                                  f"records: keys {keys}; the first: "
                                  f"{self.skipped[min(self.skipped)]}")

    def _start_workers(self):
        if self._workers and all(p.is_alive() for p in self._workers):
            return
        self.close()
        ctx = self._mp_context
        if ctx is None:
            methods = mp.get_all_start_methods()
            ctx = "fork" if "fork" in methods else methods[0]
        ctx = mp.get_context(ctx) if isinstance(ctx, str) else ctx
        h, w = self.image_size
        nbytes = self.prefetch * self.batch_size * h * w * 3
        # the workers are the parallelism, and OpenCV's thread pool does not survive a fork
        # (a child that touches the copied pool can deadlock): fork with a one-thread pool
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            self._fork_workers(ctx, nbytes)
        finally:
            cv2.setNumThreads(cv2_threads)

    def _fork_workers(self, ctx, nbytes):
        main_thread = threading.current_thread() is threading.main_thread()
        for _ in range(self.num_workers):
            raw = ctx.RawArray("B", nbytes)
            tasks, results = ctx.Queue(), ctx.Queue()
            p = ctx.Process(target=_worker_entry,
                            args=(self.dataset, self.augmentation, self.seed, self.image_size,
                                  raw, self.prefetch, self.batch_size, tasks, results,
                                  self.strict, self.skip_corrupt > 0, os.getpid(),
                                  main_thread),
                            daemon=True)
            p.start()
            self._workers.append(p)
            self._tasks.append(tasks)
            self._results.append(results)
            self._slots.append(_slot_view(raw, self.prefetch, self.batch_size, self.image_size))

    def close(self):
        """Stop the worker processes (they restart on the next iteration)."""
        for q in self._tasks:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for p in self._workers:
            p.join(timeout=2.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=1.0)
        for q in self._tasks + self._results:
            q.cancel_join_thread()
            q.close()
        self._workers, self._tasks, self._results, self._slots = [], [], [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass


class ShardedTrainLoader(TrainLoader):
    """Worker ``rank`` of ``num_shards`` reads its slice of every global batch.

    The global batch (and so every sample's position and augmentation) is that of the
    single-process loader with ``batch_size * num_shards``; each distributed worker decodes
    only its own ``batch_size`` samples.
    """

    def __init__(self, dataset, batch_size, rank, num_shards, **kwargs):
        super().__init__(dataset, batch_size * num_shards, **kwargs)
        self.shard_size = int(batch_size)
        self.rank = int(rank)

    def epoch_batches(self, epoch, start_batch=0):
        lo, hi = self.rank * self.shard_size, (self.rank + 1) * self.shard_size
        return [idx[lo:hi] for idx in super().epoch_batches(epoch, start_batch)]


def make_train_loader(dataset_or_root, batch_size, num_workers=0, seed=0, flip=True,
                      last_batch="discard", shuffle=True, brightness=0.0, contrast=0.0,
                      saturation=0.0, crop_scale=None, label_dtype="float32", prefetch=2,
                      mp_context=None, strict=False, skip_corrupt=0, logger=None):
    """The training loader the engine uses.

    Parameters
    ----------
    dataset_or_root : FaceRecordDataset, str or dataset
        A record folder, a :class:`FaceRecordDataset` (fast path: raw records are decoded in
        the workers), or any dataset returning ``(HWC uint8 RGB image, int label)``.
    batch_size : int
        Samples per batch.
    num_workers : int
        Worker processes (0 = decode in the calling process).
    seed : int
        Fixes the shuffling and every random augmentation (see the module docstring).
    flip : bool
        Random horizontal flip (insightface's default augmentation).
    last_batch : {'discard', 'keep'}
        Drop (insightface) or keep the final partial batch.
    shuffle : bool
        Shuffle each epoch.
    brightness, contrast, saturation : float
        Optional colour jitter strengths (0 disables).
    crop_scale : (float, float) or None
        Optional random crop-resize area range, e.g. ``(0.8, 1.0)``.
    label_dtype : str
        dtype of the label NDArray (float32 holds ids exactly up to 2**24).
    prefetch : int
        Batches in flight per worker.
    mp_context : str or multiprocessing context, optional
        Start method for workers ('fork' where available).
    strict : bool
        Treat the JPEG decoder's corrupt-data warnings as errors (wrong pixels otherwise).
    skip_corrupt : int
        Replace up to this many distinct corrupt records by the next readable one, logging
        each key (0: the first corrupt record stops the run).
    logger : logging.Logger, optional
        Where skipped records are reported (default ``gluonfr.data.loader``).

    Returns
    -------
    TrainLoader
        Iterable of ``(data (N,3,H,W) float32 0..255, label (N,))`` NDArrays; ``len()`` is
        the number of batches per epoch; ``set_epoch(e, start_batch)`` positions a resume.
    """
    dataset = (FaceRecordDataset(dataset_or_root) if isinstance(dataset_or_root, str)
               else dataset_or_root)
    aug = TrainAugmentation(flip=flip, brightness=brightness, contrast=contrast,
                            saturation=saturation, crop_scale=crop_scale)
    return TrainLoader(dataset, batch_size, num_workers=num_workers, seed=seed, augmentation=aug,
                       last_batch=last_batch, shuffle=shuffle, label_dtype=label_dtype,
                       prefetch=prefetch, mp_context=mp_context, strict=strict,
                       skip_corrupt=skip_corrupt, logger=logger)
