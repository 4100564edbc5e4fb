"""Machinery shared by the softmax-based face heads: input dtype, label checks, sparse CE."""
import mxnet as mx
import numpy as np
from mxnet import autograd, nd
from mxnet.gluon.loss import Loss

from .labels import check_labels

__all__ = ["SoftmaxHeadLoss", "StatefulHeadLoss"]


def stop_gradient(F, x):
    """``x`` without gradient: ``detach()`` imperatively, ``BlockGrad`` in a graph.

    MXNet 1.9.1's imperative autograd can segfault when it backpropagates through a
    ``BlockGrad`` of a recorded array; a detached array has no history at all.
    """
    return x.detach() if F is nd else F.BlockGrad(x)


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
        exact gradient; on CPU the cross-entropy backward is several times faster, but three
        more (N, C) float32 buffers stay alive until the backward (figures in
        docs/performance.rst). Off by default: memory is the scarcer resource at MS1M scale
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
        self._traced = False  # called with Symbols: traced inside another block's graph
        self._compute_dtype = "float32"

    def _num_classes(self, data):
        """Number of classes for the host label check (subclasses may know it statically)."""
        return data.shape[-1]

    #: inputs beyond ``(data, label)`` the head takes, in order (e.g. ``("norms",)``)
    needs = ()

    def forward(self, data, label, *inputs, sample_weight=None):
        """Compute the per-sample loss (and the logits with ``return_logits=True``).

        Parameters
        ----------
        data : NDArray
            The head's input (cosines for margin losses, embeddings for L2-softmax).
        label : NDArray
            (N,) integer class ids as float32/float64/int32/int64.
        *inputs : NDArray
            The inputs named by :attr:`needs` (e.g. the (N,) embedding norms), then
            optionally ``sample_weight``.
        sample_weight : NDArray, optional
            (N,) per-sample weights.
        """
        if len(inputs) < len(self.needs):
            raise TypeError(f"{type(self).__name__} takes (cos, label, "
                            f"{', '.join(self.needs)}): missing {self.needs[len(inputs):]}")
        if sample_weight is None and len(inputs) > len(self.needs):
            sample_weight, inputs = inputs[len(self.needs)], inputs[:len(self.needs)]
        return self._forward_inputs(data, label, list(inputs), sample_weight)

    def _forward_inputs(self, data, label, inputs, sample_weight):
        self._traced = not isinstance(data, nd.NDArray)
        if isinstance(data, nd.NDArray):
            half = data.dtype == np.float16
            compute = "float64" if data.dtype == np.float64 else "float32"
            if half != self._half_input or compute != self._compute_dtype:
                self._half_input, self._compute_dtype = half, compute
                self._clear_cached_op()  # the graph depends on the input dtype
            if self._check_label:
                check_labels(label, self._num_classes(data))
        args = [data, label] + list(inputs)
        if sample_weight is not None:
            args.append(sample_weight)
        out = super().forward(*args)
        # a hybridized block returns a list for several outputs; keep one type either way
        return tuple(out) if isinstance(out, list) else out

    def _to_compute_dtype(self, F, x):
        """float16 -> float32 (softmax over ~1e5 classes overflows a float16 sum); else as is.

        Inside a graph traced as part of a larger block (the training head), the input dtype
        is unknown when the graph is built (float16 parameters, or MXNet AMP making the
        classifier's output float16): ``amp_cast`` converts float16 only and leaves float32
        alone.
        """
        if self._traced:
            return F.amp_cast(x, dtype="float32")
        # known from the NDArray input; amp_cast has no float64 kernel on oneDNN CPUs
        return F.cast(x, "float32") if self._half_input else x

    def _in_compute_dtype(self, F, x):
        """``x`` (a state, norms, ...) cast to the dtype the head computes in."""
        return F.cast(x, self._compute_dtype)

    def _cross_entropy(self, F, logits, index, valid, sample_weight=None):
        """``-log softmax(logits)[index]`` per sample, guarded and weighted.

        ``logits`` are already scaled (``log_softmax``'s ``temperature`` argument would save
        that multiply but is much slower on CPU: it has no MKLDNN path).
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


class StatefulHeadLoss(SoftmaxHeadLoss):
    """A softmax head with running state (EMA statistics, an iteration count, a scale).

    The state lives in parameters with ``grad_req='null'`` (saved and restored with the
    head's parameters, one copy per device), is read by the graph as an input, and the graph
    returns the updated values, which :meth:`forward` writes back after the call when
    ``autograd.is_training()``: so it survives ``hybridize()`` (a Python attribute changed
    inside ``hybrid_forward`` would be frozen into the traced graph). Each device updates its
    copy from its own share of the batch, once per call (per micro-batch in the engine).

    The graph never differentiates through a state parameter: the values it uses are
    computed in the graph from the state and the batch, so overwriting the state after the
    call cannot change the backward pass.

    Subclasses declare ``_states = {name: initial value}`` (set in ``__init__`` before
    calling :meth:`_make_states`) and end ``hybrid_forward`` with
    ``self._finish(F, logits, index, valid, sample_weight, new_states)``. ``hybrid_forward``
    receives ``update`` (1 in training, 0 otherwise: the recurrence is then not applied)
    after the inputs of :attr:`needs`.
    """

    def _make_states(self, states):
        self._state_names = tuple(states)
        with self.name_scope():
            for name, value in states.items():
                setattr(self, name, self.params.get(name, shape=(1,), grad_req="null",
                                                    init=mx.init.Constant(float(value)),
                                                    differentiable=False))

    def state(self, ctx=None):
        """The current state as ``{name: float}`` (of the copy on ``ctx``, default the first)."""
        out = {}
        for name in self._state_names:
            p = getattr(self, name)
            out[name] = float((p.data(ctx) if ctx is not None else p.list_data()[0]).asscalar())
        return out

    def forward(self, data, label, *inputs, sample_weight=None):
        """As :meth:`SoftmaxHeadLoss.forward`; the state moves after the call in training.

        Inside a hybridized parent block (symbolic inputs) the parent passes the update flag
        after the inputs of :attr:`needs` (``loss(cos, label, *needs, update)``), receives the
        new state values as the last outputs and writes them back with :meth:`write_state`
        (:class:`gluonfr.engine.TrainHead` does).
        """
        if isinstance(data, nd.NDArray):
            return super().forward(data, label, *inputs, sample_weight=sample_weight)
        k = len(self.needs)
        if len(inputs) < k + 1:
            raise TypeError(f"{type(self).__name__} inside a hybridized block takes (cos, "
                            f"label, {', '.join(self.needs + ('update',))}): the parent "
                            "passes the update flag and writes the returned state back")
        if len(inputs) > k + 1:
            sample_weight = inputs[k + 1]
        return SoftmaxHeadLoss._forward_inputs(self, data, label, list(inputs[:k + 1]),
                                               sample_weight)

    @property
    def num_states(self):
        """How many state values the graph returns after the loss (and logits)."""
        return len(self._state_names)

    def update_flag(self, ctx):
        """The ``update`` input: 1 under ``autograd.is_training()``, else 0."""
        return nd.full((1,), 1.0 if autograd.is_training() else 0.0, ctx=ctx, dtype="float32")

    def write_state(self, values, ctx):
        """Store the state values a call returned into the copy on ``ctx`` (in training)."""
        if not autograd.is_training():
            return
        with autograd.pause():
            for name, value in zip(self._state_names, values):
                target = getattr(self, name).data(ctx)
                value.astype(target.dtype).copyto(target)

    def _forward_inputs(self, data, label, inputs, sample_weight):
        params = [getattr(self, n) for n in self._state_names]
        if any(p._data is None for p in params) and not any(p._deferred_init for p in params):
            self.initialize(ctx=data.context)  # stateful heads work without initialize()
        inputs = list(inputs) + [self.update_flag(data.context)]
        out = super()._forward_inputs(data, label, inputs, sample_weight)
        n = self.num_states
        out, states = out[:-n], out[-n:]
        self.write_state(states, data.context)
        return out[0] if len(out) == 1 else tuple(out)

    def _split_inputs(self, args):
        """``hybrid_forward``'s ``*args``: (needs..., update[, sample_weight])."""
        k = len(self.needs)
        extra, update = args[:k], args[k]
        sample_weight = args[k + 1] if len(args) > k + 1 else None
        return list(extra), update, sample_weight

    def _finish(self, F, logits, index, valid, sample_weight, states):
        out = self._cross_entropy(F, logits, index, valid, sample_weight)
        out = out if isinstance(out, tuple) else (out,)
        return out + tuple(stop_gradient(F, s) for s in states)
