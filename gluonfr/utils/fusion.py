"""oneDNN graph fusion of embedding networks for CPU inference (the fast float32 path).

:func:`fuse` gives the ``optimize_for('MKLDNN')`` form of a network: the PReLUs between cheap
convolutions are first folded into them (:mod:`gluonfr.utils.prelu_fold`), then convolution +
BatchNorm (+ ReLU, + sum) and fully-connected layers become single oneDNN primitives. It is a
separate :class:`OneDNNBlock` holding a copy of the network's weights as they are when it is
made, so the network itself is left as it was (a training backbone evaluated between
iterations keeps training normally, and is fused again for the next evaluation).

Two MXNet 1.9.1 faults shape this module, both worked around here and nowhere else:

- with ``static_shape=True`` a fused graph's second call returns data that cannot be read
  ("We can't generate TBlob for MKLDNN data") and a third call with another batch size returns
  wrong numbers, so fused graphs get ``static_alloc`` only;
- reading (``asnumpy``) an output of a oneDNN graph before it is computed can fail the same
  way (the layout check runs before the wait), so :class:`OneDNNBlock` waits for its outputs
  before returning them. The int8 networks of :mod:`gluonfr.utils.quantize` are
  :class:`OneDNNBlock` too.
"""
import logging
import warnings

import mxnet as mx
from mxnet.gluon import HybridBlock, SymbolBlock

from .context import as_context_list
from .prelu_fold import fold_prelu

logger = logging.getLogger(__name__)

__all__ = ["fuse", "is_fused", "fusion_available", "OneDNNBlock"]

_FUSED_PREFIXES = ("_sg_mkldnn", "_contrib_quantize", "_contrib_dequantize")


def fusion_available(ctx=None):
    """Whether oneDNN fusion applies: MXNet built with MKLDNN and ``ctx`` (a context, a list
    or a device string) one CPU context."""
    if ctx is not None:
        ctx_list = as_context_list(ctx)
        if len(ctx_list) != 1 or ctx_list[0].device_type != "cpu":
            return False
    return mx.runtime.Features().is_enabled("MKLDNN")


class OneDNNBlock(SymbolBlock):
    """A :class:`~mxnet.gluon.SymbolBlock` of a oneDNN-partitioned graph whose outputs are
    ready to read when returned (see the module notes)."""

    def forward(self, x, *args):
        out = super().forward(x, *args)
        if isinstance(x, mx.nd.NDArray):
            for o in out if isinstance(out, (list, tuple)) else (out,):
                o.wait_to_read()
        return out


def inference_graph(net, data=None):
    """``net``'s graph and values: (symbol, arguments, auxiliary states), CPU NDArrays by name."""
    data = mx.sym.var("data") if data is None else data
    out = net(data)
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(out))
    # data(cpu) also fills gluonfr.nn.PReLU's constants, which are set on first use
    values = {name: p.data(mx.cpu()) for name, p in net.collect_params().items()}
    aux_names = set(out.list_auxiliary_states())
    args = {n: values[n] for n in out.list_arguments() if n in values}
    return out, args, {n: values[n] for n in aux_names if n in values}


def symbol_block(sym, args, auxs):
    """An :class:`OneDNNBlock` of ``sym`` (input ``data``) holding the given values."""
    block = OneDNNBlock(sym, [mx.sym.var("data")])
    values = {**args, **auxs}
    for name, param in block.collect_params().items():
        if name not in values:
            raise ValueError(f"graph parameter {name!r} has no value")
        param._load_init(values[name], mx.cpu(), cast_dtype=True, dtype_source="saved")
    return block


def is_fused(net):
    """Whether ``net`` already runs a oneDNN-partitioned (fused or int8) graph."""
    if isinstance(net, OneDNNBlock):
        return True
    if not isinstance(net, SymbolBlock):
        return False
    ops = {s.attr("op_name") or "" for s in net(mx.sym.var("data")).get_internals()}
    return any(op.startswith(_FUSED_PREFIXES) for op in ops)


def fuse(net, example):
    """The oneDNN-fused form of an embedding network, for CPU inference.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Its parameters initialised on the CPU. Not modified.
    example : mxnet.nd.NDArray or tuple of int
        An input batch (or its shape, e.g. ``(1, 3, 112, 112)``); other batch sizes work.

    Returns
    -------
    mxnet.gluon.HybridBlock
        An :class:`OneDNNBlock` with a copy of ``net``'s current weights; ``net`` itself when
        it is already fused (or int8), is not a HybridBlock, or the partitioning fails (logged).
    """
    if not isinstance(net, HybridBlock) or is_fused(net):
        return net
    if not isinstance(example, mx.nd.NDArray):
        example = mx.nd.zeros(tuple(example))
    data = mx.sym.var("data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SymbolBlock's notes on the unnamed input
            sym, args, auxs = inference_graph(net, data)
            sym, args, auxs, _ = fold_prelu(sym, args, auxs)
            block = symbol_block(sym, args, auxs)
            block.optimize_for(example, backend="MKLDNN", static_alloc=True)
    except mx.base.MXNetError as e:
        logger.warning("oneDNN fusion failed, running the plain graph: %s",
                       str(e).strip().splitlines()[-1])
        return net
    return block
