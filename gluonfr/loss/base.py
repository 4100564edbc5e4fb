"""Machinery shared by the softmax-based face heads: input dtype, label checks, sparse CE."""
import numpy as np
from mxnet import nd
from mxnet.gluon.loss import Loss

from .labels import check_labels

__all__ = ["SoftmaxHeadLoss"]


class SoftmaxHeadLoss(Loss):
    """Base class: per-sample softmax cross-entropy with sparse class-id labels.

    Subclasses build the scaled (N, C) logit matrix in ``hybrid_forward`` and finish with
    :meth:`_cross_entropy`. What this class adds to :class:`mxnet.gluon.loss.Loss`:

    * float16 input is noted on the host so the graph computes in float32 (rebuilding the
      cached graph if the input dtype changes); the loss is float32 then.
    * Labels are checked on the host (:func:`gluonfr.loss.check_labels`) on every call unless
      ``check_label=False``; in the graph an invalid label gives a NaN loss for that sample
      and zero gradient (never an out-of-bounds read).
    * ``return_logits=True`` makes the call return ``(loss, logits)``, the scaled logits the
      loss saw (margin included), detached from autograd (no gradient flows through them):
      for training accuracy without a second pass.

    Parameters
    ----------
    return_logits : bool, default False
    check_label : bool, default True
        Host check of the labels on each call (costs one wait for the label array).
    fast_backward : bool, default False
        Take the softmax gradient from MKLDNN's softmax forward instead of MXNet's
        ``_backward_log_softmax`` (a scalar ``exp`` per element on CPU). Same loss and the same
        exact gradient; on CPU the cross-entropy backward is ~4x faster (~70 ms less per step
        at 128 x 85,742), but three more (N, C) float32 buffers stay alive until the backward
        (+~130 MB at that size). Off by default: memory is the scarcer resource at MS1M scale
        and on GPU the plain backward is already fast.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
    """

    def __init__(self, return_logits=False, check_label=True, fast_backward=False, weight=None,
                 batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._fast_backward = bool(fast_backward)
        self._return_logits = bool(return_logits)
        self._check_label = bool(check_label)
        self._half_input = False

    def _num_classes(self, data):
        """Number of classes for the host label check (subclasses may know it statically)."""
        return data.shape[-1]

    def forward(self, data, label, sample_weight=None):
        """Compute the per-sample loss (and the logits with ``return_logits=True``).

        Parameters
        ----------
        data : NDArray
            The head's input (cosines for margin losses, embeddings for L2-softmax).
        label : NDArray
            (N,) integer class ids as float32/float64/int32/int64.
        sample_weight : NDArray, optional
            (N,) per-sample weights.
        """
        if isinstance(data, nd.NDArray):
            half = data.dtype == np.float16
            if half != self._half_input:
                self._half_input = half
                self._clear_cached_op()  # the graph depends on the input dtype
            if self._check_label:
                check_labels(label, self._num_classes(data))
        args = (data, label) if sample_weight is None else (data, label, sample_weight)
        out = super().forward(*args)
        # a hybridized block returns a list for several outputs; keep one type either way
        return tuple(out) if isinstance(out, list) else out

    def _to_compute_dtype(self, F, x):
        """float16 -> float32 (softmax over ~1e5 classes overflows a float16 sum); else as is."""
        return F.cast(x, "float32") if self._half_input else x

    def _cross_entropy(self, F, logits, index, valid, sample_weight=None):
        """``-log softmax(logits)[index]`` per sample, guarded and weighted.

        ``logits`` are already scaled (``log_softmax``'s ``temperature`` argument would save
        that multiply but runs ~8x slower on CPU, with no MKLDNN path).
        """
        logp = F.log_softmax(logits, axis=-1)
        if not self._fast_backward:
            loss = -F.pick(logp, index, axis=-1)
        else:
            # Same value; the gradient comes from a zero-valued term whose gradient is exactly
            # d CE / d logits = softmax - onehot, so the backward is two cheap passes instead of
            # _backward_log_softmax (one scalar exp per element on CPU).
            loss = -F.pick(F.BlockGrad(logp), index, axis=-1)
            prob = F.BlockGrad(F.softmax(logits, axis=-1))
            ones = F.BlockGrad(F.ones_like(F.slice_axis(logits, axis=0, begin=0, end=1)))
            # <prob_i, logits_i> as a matrix-vector product: MXNet's row reductions are slow
            inner = F.FullyConnected(prob * logits, ones, no_bias=True, num_hidden=1)
            surrogate = F.reshape(inner, shape=(-1,)) - F.pick(logits, index, axis=-1)
            loss = loss + (surrogate - F.BlockGrad(surrogate))
        # ones_like carries no gradient, so the NaN never reaches any weight
        loss = F.where(valid, loss, F.ones_like(loss) * float("nan"))
        if sample_weight is not None:
            loss = F.broadcast_mul(loss, F.reshape(sample_weight, shape=(-1,)))
        if self._weight is not None:
            loss = loss * self._weight
        if self._return_logits:
            # Imperative: cut the history entirely; backpropagating a BlockGrad'ed output through
            # ArcFace's graph segfaults MXNet 1.9.1's imperative autograd.
            return loss, (logits.detach() if F is nd else F.BlockGrad(logits))
        return loss
