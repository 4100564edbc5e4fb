"""Per-channel PReLU that runs on oneDNN kernels on the CPU.

MXNet 1.9.1 computes ``nn.PReLU`` (``LeakyReLU(act_type='prelu')``) with a generic broadcast
kernel that dominated MobileFaceNet's CPU inference and training time (the profile is in
docs/performance.rst, "PReLU (fixed)"). The same function written as

    prelu(x) = alpha * x + (1 - alpha) * relu(x)

is two per-channel scalings (a BatchNorm with mean 0, variance 1, no shift: oneDNN's batch
normalisation, forward and backward), one ReLU and one sum, all oneDNN primitives. The
values equal ``nn.PReLU``'s up to float rounding (exact where x <= 0, one rounding of
``alpha*x + (1-alpha)*x`` where x > 0); the gradients are the exact gradients of the
expression (for ``alpha`` BatchNorm's gamma gradient, ``sum(dy * x)`` and ``-sum(dy * relu(x))``).

On GPU contexts the block runs the native op instead (:meth:`PReLU.native_for`): the slow
kernel is a CPU problem. Parameter names and files are those of ``nn.PReLU`` (one ``alpha``
of shape (C,)), so checkpoints move freely between the two. ONNX export
(:func:`gluonfr.utils.export_onnx`) traces the plain ``LeakyReLU(act_type='prelu')`` form
(:func:`native_prelu`), which ONNX runtimes have a fused kernel for.
"""
import contextlib
import warnings

from mxnet import initializer
from mxnet.gluon.block import HybridBlock
from mxnet.gluon.parameter import Parameter

__all__ = ["PReLU", "native_prelu"]


class _Constant(Parameter):
    """A constant vector that lives wherever ``follow`` lives.

    It is filled on first use on the contexts of the parameter it follows, so a network
    whose parameters come from a file (``load_parameters`` initialises only what the file
    holds) or move with ``reset_ctx`` needs nothing more.
    """

    def __init__(self, name, follow=None, value=0.0, **kwargs):
        super().__init__(name, **kwargs)
        self._follow, self._value = follow, float(value)

    def _check_and_get(self, arr_list, ctx):
        try:
            wanted = self._follow.list_ctx()
        except RuntimeError:  # the followed parameter is not initialised either
            wanted = None
        if wanted and (arr_list is None or self.list_ctx() != wanted):
            self.initialize(init=initializer.Constant(self._value), ctx=wanted,
                            force_reinit=True)
            arr_list = self._data
        return super()._check_and_get(arr_list, ctx)


class PReLU(HybridBlock):
    """Per-channel parametric ReLU, ``max(x, 0) + alpha * min(x, 0)`` per channel (axis 1).

    Parameters
    ----------
    in_channels : int
        Number of channels (one slope each).
    alpha_initializer : Initializer, optional
        Initial slopes (default ``Constant(0.25)``, as ``nn.PReLU`` and insightface).
    """

    def __init__(self, in_channels, alpha_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self._channels = int(in_channels)
        self._native = False
        with self.name_scope():
            self.alpha = self.params.get("alpha", shape=(self._channels,),
                                         init=alpha_initializer or initializer.Constant(0.25))
            # BatchNorm reads its mean / variance as graph variables, so the constants 0 and 1
            # are parameters; they are kept off the block's attributes so that parameter files
            # hold only alpha, exactly like nn.PReLU's
            self._constants = tuple(self._constant(name, value)
                                    for name, value in (("zero", 0.0), ("one", 1.0)))

    def _constant(self, name, value):
        full = self.params.prefix + name
        param = _Constant(full, follow=self.alpha, value=value, shape=(self._channels,),
                          init=initializer.Constant(value), grad_req="null",
                          differentiable=False)
        self.params._params[full] = param  # ParameterDict.get cannot make a subclass
        return param

    def cast(self, dtype):
        # like BatchNorm's own scale and shift, the slopes stay float32 under float16
        super().cast("float32" if str(dtype) == "float16" else dtype)

    @staticmethod
    def native_for(contexts):
        """Whether the plain ``LeakyReLU('prelu')`` op is the formulation for these devices.

        The oneDNN rewrite exists for MXNet's slow CPU kernel; on GPUs the native op has a
        CUDA kernel and the rewrite would only add work. A mixed CPU/GPU list keeps the
        rewrite (one graph serves every device).
        """
        contexts = list(contexts)
        return bool(contexts) and all(c.device_type == "gpu" for c in contexts)

    def _parameter_contexts(self):
        try:
            return self.alpha.list_ctx()
        except RuntimeError:  # deferred or not initialised: decided again when it is
            return []

    def hybrid_forward(self, F, x, alpha):
        # decided when the graph is traced, from where the slopes live; moving the network
        # between CPU and GPU afterwards needs net.hybridize() again (it always does in Gluon)
        if self._native or self.native_for(self._parameter_contexts()):
            return F.LeakyReLU(x, gamma=alpha, act_type="prelu")
        if F.__name__.endswith("symbol"):
            zero, one = (p.var() for p in self._constants)
        else:
            zero, one = (p.data(x.context) for p in self._constants)

        def scale(data, gamma):
            # cudnn_off: cuDNN would raise eps to 1e-5 and scale by 1/sqrt(1 + 1e-5)
            return F.BatchNorm(data, gamma, zero, zero, one, eps=0.0, fix_gamma=False,
                               use_global_stats=True, cudnn_off=True)

        return scale(x, alpha) + scale(F.Activation(x, act_type="relu"), 1.0 - alpha)

    def __repr__(self):
        return f"{type(self).__name__}({self._channels})"


@contextlib.contextmanager
def native_prelu(net):
    """Within the block, every :class:`PReLU` of ``net`` traces as ``LeakyReLU('prelu')``.

    For exporters and runtimes that have a PReLU kernel (ONNX). The cached graphs are
    rebuilt on entry and on exit.
    """
    blocks = []

    def visit(block):
        blocks.append(block)
        for child in block._children.values():
            visit(child)

    def switch(native):
        for block in blocks:
            if isinstance(block, PReLU):
                block._native = native
            if isinstance(block, HybridBlock):
                block._clear_cached_op()

    visit(net)
    switch(True)
    try:
        with warnings.catch_warnings():
            # the unused constants of the oneDNN form
            warnings.filterwarnings("ignore", message="Parameter .* is not used by any")
            yield net
    finally:
        switch(False)
