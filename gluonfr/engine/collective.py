"""Collective operations between the workers of a distributed job: all-gather and all-reduce.

Model-parallel heads (:class:`gluonfr.nn.PartialFC`) exchange activations, not parameters:
every worker needs the embeddings and labels of the whole global batch, the softmax needs the
maximum and the sum of exponentials over every worker's class slice, and the embedding
gradients of the global batch add up over the slices. :class:`Collective` provides these three
operations over MXNet's own distributed kvstore (``dist_sync``, the one the engine already
uses for the backbone's gradients), so a job needs nothing beyond the MXNet wheel and its
launcher (scripts/launch_dist.py). Horovod would give the same operations through MPI/Gloo,
but PyPI has it as a source distribution only (no wheel for Linux / Python 3.11, checked with
``pip download --only-binary=:all: horovod``): it has to be compiled against the installed
MXNet at install time, while the parameter servers are there already.

How the operations map onto the parameter server (ps-lite, ``dist_sync``):

* A push to a key from every worker is summed by the server; once all ``num_workers`` pushes
  arrived, the sum replaces the stored value and the pushes are acknowledged, so a pull issued
  after the push returns the sum of this round. That holds only while the server has **no
  optimizer**: ``Trainer(update_on_kvstore=True)`` or ``kv.set_optimizer`` installs an updater
  on the server, and every push becomes an update of the stored value. The engine trains with
  ``update_on_kvstore=False`` (its own :class:`~gluonfr.engine.distributed.DistGradientReducer`
  sums through push and pull too); :class:`Collective` checks on construction that a push of
  ones comes back as ``num_workers`` and refuses to run otherwise.
* ``all_reduce(x, 'sum')``: push ``x``, pull the sum. ``all_gather(x)``: each worker writes its
  rows into a zero buffer of ``num_workers * n`` rows at offset ``rank * n`` and the buffers
  are summed: adding zeros is exact, so the gathered rows are bit-identical to the sent ones.
  Each worker pushes and pulls the whole gathered array (``num_workers * n`` rows, its own
  and zeros): for Partial FC's embeddings that is the global batch x D per worker and step,
  small beside the backbone's gradients.
* dtypes: the servers add floating-point arrays only (a push of ``int32`` aborts the server
  process) and carry ``float64`` as ``float32`` (it comes back rounded), so ``float32`` and
  ``float16`` travel as themselves, ``float64`` is refused, and integer arrays (labels)
  travel as 16-bit pieces in ``float32``, each exact, and come back exactly in their own
  dtype (any int32 / int64 value; integer sums exact for up to 256 workers).
  ``all_reduce(x, 'max')``: all-gather, then the maximum over the workers on each worker
  (exact, and the same on every worker).
* A key's size is fixed when it is initialised (the kvstore refuses a push of another size),
  and initialisation is a barrier of all workers. Each distinct (buffer shape, dtype) gets its
  own key the first time it is used, so shapes may change between calls (a last, smaller
  batch), but **every worker must call the same operations with the same shapes and dtypes in
  the same order** (as data-parallel training does anyway); a worker that skips a call leaves
  the others waiting in the barrier (the engine's ``--dist-timeout`` watchdog stops them).
* Keys start at :attr:`Collective.KEY_BASE` (2**30), far above the keys of the ``Trainer``
  and the gradient reducer (``0 .. 2 * number of parameters``). Arrays larger than
  ``MXNET_KVSTORE_BIGARRAY_BOUND`` elements are split over the servers by the kvstore itself.
* Summation order on the server follows arrival: with two workers the sum is exact and the
  same every run; with more, float sums may differ in the last bit from run to run (never
  between the workers: all pull the same stored value).

The operations are not recorded by autograd: a model-parallel head routes the gradients itself
(the gradient of an all-gather is the all-reduced sum of the gathered gradient's slice).

Examples
--------
>>> coll = Collective.local()
>>> coll.rank, coll.num_workers
(0, 1)
>>> import mxnet as mx
>>> coll.all_gather(mx.nd.array([[1, 2]])).asnumpy().tolist()
[[1.0, 2.0]]
"""
import mxnet as mx
import numpy as np
from mxnet import autograd

__all__ = ["Collective"]

_OPS = ("sum", "max")


class Collective:
    """All-gather and all-reduce over the workers of a job (or the identity in one process).

    Parameters
    ----------
    kvstore : mx.kv.KVStore, optional
        A ``dist_sync`` / ``dist_device_sync`` kvstore shared with the engine; ``rank`` and
        ``num_workers`` come from it. ``None`` (as :meth:`local`) is one process: rank 0 of
        1 worker, every operation returns its input unchanged.
    key_base : int
        First kvstore key this object uses (default :attr:`KEY_BASE`); two ``Collective``
        objects on one kvstore need bases far enough apart for their keys.

    Attributes
    ----------
    rank : int
        This worker's rank, ``0 .. num_workers - 1``; all-gathered rows are in rank order.
    num_workers : int
    """

    KEY_BASE = 1 << 30

    def __init__(self, kvstore=None, key_base=KEY_BASE):
        self.kv = kvstore
        self._keys = {}  # (shape, dtype) -> (key, buffer)
        self._next_key = int(key_base)
        if kvstore is None:
            self.rank, self.num_workers = 0, 1
            return
        kind = getattr(kvstore, "type", "")
        if "dist" not in kind or "async" in kind:
            raise ValueError(f"Collective needs a dist_sync kvstore, got {kind!r} "
                             "(use Collective.local() for one process)")
        self.rank, self.num_workers = int(kvstore.rank), int(kvstore.num_workers)
        self._check_plain_sum()

    @classmethod
    def local(cls):
        """The collective of a single process: rank 0 of 1 worker; operations are identities."""
        return cls(None)

    def __repr__(self):
        where = "local" if self.kv is None else self.kv.type
        return f"Collective({where}, rank={self.rank}, num_workers={self.num_workers})"

    # -- operations -----------------------------------------------------------------------------
    def all_gather(self, x):
        """Concatenate every worker's ``x`` along the first axis, in rank order.

        Parameters
        ----------
        x : NDArray
            Shape ``(n, ...)`` on any context, ``float32``, ``float16`` or an integer dtype;
            ``n``, the other dimensions and the dtype must be the same on every worker.

        Returns
        -------
        NDArray
            ``(num_workers * n, ...)`` on ``x``'s context: rows ``rank * n .. (rank + 1) * n``
            are worker ``rank``'s ``x``, bit for bit. With one worker: ``x`` itself.
        """
        _check_array(x, "all_gather")
        if self.num_workers == 1:
            return x
        if x.ndim == 0:
            raise ValueError("all_gather: x must have a first axis to concatenate along "
                             "(got a 0-d array)")
        n = x.shape[0]
        shape = (self.num_workers * n,) + tuple(x.shape[1:])
        if x.size == 0:  # nothing to send (the same on every worker: shapes agree)
            return mx.nd.zeros(shape, ctx=x.context, dtype=x.dtype)
        with autograd.pause():
            wire, decode = _encode(x, "all_gather")
            key, buf = self._buffer((shape[0],) + tuple(wire.shape[1:]), wire.dtype)
            buf[:] = 0
            buf[self.rank * n:(self.rank + 1) * n] = wire
            return decode(self._sum_through_server(key, buf), x)

    def all_reduce(self, x, op="sum"):
        """Elementwise ``op`` of every worker's ``x``; every worker gets the same result.

        Parameters
        ----------
        x : NDArray
            Any shape (the same on every worker) and context; ``float32``, ``float16`` or an
            integer dtype (integer sums are exact for up to 256 workers).
        op : {'sum', 'max'}

        Returns
        -------
        NDArray
            Same shape and dtype as ``x``, on ``x``'s context. With one worker: ``x`` itself.
        """
        if op not in _OPS:
            raise ValueError(f"all_reduce: op must be one of {', '.join(_OPS)}, got {op!r}")
        _check_array(x, "all_reduce")
        if self.num_workers == 1 or x.size == 0:
            return x
        with autograd.pause():
            if op == "max":
                every = self.all_gather(x.reshape((1, -1)))  # (num_workers, size): exact
                if _is_integer(x.dtype):  # MXNet reduces int64 through float64
                    top = every.asnumpy().max(axis=0).reshape(x.shape)
                    return mx.nd.array(top, ctx=x.context, dtype=x.dtype)
                return every.max(axis=0).reshape(x.shape)
            if _is_integer(x.dtype) and self.num_workers > _MAX_INT_SUM_WORKERS:
                raise ValueError(f"all_reduce: integer sums are exact for up to "
                                 f"{_MAX_INT_SUM_WORKERS} workers, this job has "
                                 f"{self.num_workers}")
            wire, decode = _encode(x, "all_reduce")
            key, buf = self._buffer(tuple(wire.shape), wire.dtype)
            wire.copyto(buf)
            return decode(self._sum_through_server(key, buf), x)

    # -- kvstore plumbing -----------------------------------------------------------------------
    def _buffer(self, shape, dtype):
        """The key and the CPU buffer for arrays of this shape and dtype (initialised once)."""
        sig = (tuple(int(s) for s in shape), np.dtype(dtype).name)
        if sig not in self._keys:
            key = self._next_key
            self._next_key += 1
            buf = mx.nd.zeros(shape, ctx=mx.cpu(), dtype=dtype)
            # initialisation is a barrier: every worker reaches it with the same signature
            self.kv.init(key, buf)
            self._keys[sig] = (key, buf)
        return self._keys[sig]

    def _sum_through_server(self, key, buf):
        # the buffer is only touched by this object, so the kvstore's asynchronous push and
        # pull cannot interleave with other writers (see DistGradientReducer); the result is a
        # copy because the buffer is reused by the next call of this shape
        self.kv.push(key, buf)
        self.kv.pull(key, out=buf)
        return buf.copy()

    def _check_plain_sum(self):
        probe = mx.nd.ones((1,), ctx=mx.cpu())
        got = self.all_reduce(probe, "sum").asscalar()
        if got != self.num_workers:
            raise RuntimeError(
                f"Collective: a push of 1 from each of {self.num_workers} workers came back as "
                f"{got:g}, not {self.num_workers}: the parameter servers apply an optimizer to "
                "pushes (Trainer(update_on_kvstore=True) or kv.set_optimizer); build the "
                "Trainer with update_on_kvstore=False, as the engine does")


def _check_array(x, what):
    if not isinstance(x, mx.nd.NDArray):
        raise TypeError(f"{what}: x must be an mx.nd.NDArray, got {type(x).__name__}")
    if x.stype != "default":
        raise TypeError(f"{what}: x must be a dense NDArray, got storage type {x.stype!r}")


_CHUNK_BITS = 16  # integers travel as 16-bit pieces, each exact in float32
_MAX_INT_SUM_WORKERS = 256  # 256 pieces of < 2**16 add up below 2**24: still exact in float32


def _is_integer(dtype):
    return np.issubdtype(np.dtype(dtype), np.integer)


def _encode(x, what):
    """``x`` as the servers can add it, and the function that turns the sum back.

    The servers carry float32 (float16 too); float64 pushes come back rounded to float32, so
    they are refused. Integers are split into 16-bit pieces (the top one signed), each a
    float32 holding a whole number below 2**16: sums of zeros with them (all-gather) and sums
    over up to 256 workers are exact, and the pieces are put together again in int64.
    """
    dtype = np.dtype(x.dtype)
    if dtype in (np.float32, np.float16):
        return x.as_in_context(mx.cpu()), lambda y, like: y.as_in_context(like.context)
    if not _is_integer(dtype):
        raise TypeError(f"{what}: the parameter servers add float32 / float16 (float64 comes "
                        f"back rounded to float32) and integers; got {dtype.name}: cast it")
    pieces = max(1, dtype.itemsize * 8 // _CHUNK_BITS)
    v = x.asnumpy().astype(np.int64)
    parts = []
    for _ in range(pieces - 1):
        parts.append(v & ((1 << _CHUNK_BITS) - 1))
        v = v >> _CHUNK_BITS  # arithmetic shift: the top piece keeps the sign
    parts.append(v)
    wire = mx.nd.array(np.stack(parts, axis=-1).astype(np.float32), ctx=mx.cpu(),
                       dtype="float32")

    def decode(y, like):
        p = np.rint(y.asnumpy()).astype(np.int64)
        out = p[..., -1]
        for i in range(pieces - 2, -1, -1):
            out = (out << _CHUNK_BITS) + p[..., i]
        return mx.nd.array(out.astype(dtype), ctx=like.context, dtype=dtype)

    return wire, decode
