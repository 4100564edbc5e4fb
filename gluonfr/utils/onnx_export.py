"""Export a Gluon embedding network to ONNX with MXNet 1.9.1's own exporter.

MXNet 1.9.1's ``mx.onnx.export_model`` was written against onnx <= 1.13 and imports
``onnx.mapping``, a module that newer onnx releases removed. Instead of pinning an old onnx
(which drags an old protobuf that clashes with current onnxruntime/tensorboard wheels), this
module gives the exporter the two tables it reads from ``onnx.mapping``, rebuilt from the
public ``onnx.helper`` API, and then repairs what the exporter gets wrong for our networks:

- per-channel PReLU slopes come out with shape (C,), which ONNX broadcasts along the *last*
  axis (W) of an NCHW tensor; they are reshaped to (C, 1, 1);
- weights are listed as graph inputs as well as initializers, which stops runtimes from
  constant-folding them; they are removed from the inputs;
- BatchNormalization right after a Conv is folded into the Conv's weights and bias, so any
  runtime sees one op instead of two (inference-mode BN is an affine map per channel).

The exporter also writes every weight as a protobuf list of floats, element by element, which
is most of the export time of a deep network; while it runs, the weights it names are written
as raw little-endian bytes instead (the same tensor, as other exporters write them).
"""
import contextlib
import json
import os
import sys
import tempfile
import types

import mxnet as mx
import numpy as np

from .._optional import import_optional
from ..nn.prelu import native_prelu
from .fileio import atomic_paths

__all__ = ["export_onnx", "install_onnx_mapping_shim"]


def install_onnx_mapping_shim():
    """Provide ``onnx.mapping`` (removed in onnx 1.15+) for MXNet's exporter; idempotent."""
    import onnx
    from onnx import helper

    if hasattr(onnx, "mapping") and hasattr(onnx.mapping, "NP_TYPE_TO_TENSOR_TYPE"):
        return onnx.mapping
    shim = types.ModuleType("onnx.mapping")
    shim.TENSOR_TYPE_TO_NP_TYPE = {}
    for tensor_type in helper.get_all_tensor_dtypes():
        try:
            shim.TENSOR_TYPE_TO_NP_TYPE[tensor_type] = helper.tensor_dtype_to_np_dtype(
                tensor_type)
        except (KeyError, TypeError, ValueError):  # types numpy cannot represent
            continue
    shim.NP_TYPE_TO_TENSOR_TYPE = {}
    for tensor_type, np_type in shim.TENSOR_TYPE_TO_NP_TYPE.items():
        # several ONNX types map to one numpy type (e.g. bfloat16 -> uint16 storage in
        # some versions); the first, lowest-numbered one is the canonical one, as before
        shim.NP_TYPE_TO_TENSOR_TYPE.setdefault(np.dtype(np_type), tensor_type)
    sys.modules["onnx.mapping"] = shim
    onnx.mapping = shim
    return shim


def export_onnx(net, path, input_shape=(1, 3, 112, 112), dynamic_batch=True,
                fold_batchnorm=True, opset_version=None):
    """Export a network to an ONNX file.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        An initialised network taking NCHW float32 input (the embedding networks of
        :mod:`gluonfr.model_zoo` normalise inside their graph, so the ONNX model takes raw
        0..255 RGB input too).
    path : str
        Output ``.onnx`` file; written to a temporary file first, then renamed.
    input_shape : tuple of int
        Shape used for tracing. With ``dynamic_batch`` its batch dimension is free.
    dynamic_batch : bool
        Make the batch dimension of the input and output symbolic.
    fold_batchnorm : bool
        Fold each BatchNormalization that directly follows a Conv into the Conv.
    opset_version : int, optional
        ONNX opset; MXNet's exporter default when None.

    Returns
    -------
    str
        ``path``.
    """
    onnx = import_optional("onnx", "onnx", "export_onnx")
    install_onnx_mapping_shim()
    path = os.path.abspath(path)
    out_dir = os.path.dirname(path)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".onnx-export-") as tmp:
        prefix = os.path.join(tmp, "net")
        # ONNX runtimes have a PReLU kernel: export the textbook op, not the oneDNN form
        with native_prelu(net):
            net.hybridize()
            net(mx.nd.zeros(input_shape, ctx=_context_of(net)))
            net.export(prefix)
        shape = tuple(input_shape)
        kwargs = {}
        if dynamic_batch:
            kwargs.update(dynamic=True, dynamic_input_shapes=[(None,) + shape[1:]])
        if opset_version is not None:
            kwargs["opset_version"] = opset_version
        raw = os.path.join(tmp, "raw.onnx")
        params = _params_with_fixed_gammas(prefix + "-symbol.json", prefix + "-0000.params")
        with _raw_weight_tensors(onnx, params):
            mx.onnx.export_model(mx.sym.load(prefix + "-symbol.json"), params, [shape],
                                 np.float32, raw, **kwargs)
        model = onnx.load(raw)
        _drop_initializers_from_inputs(model)
        _fix_prelu_slopes(model)
        if fold_batchnorm:
            _fold_conv_batchnorm(model)
        onnx.checker.check_model(model)
        with atomic_paths(path) as (final,):
            onnx.save(model, final)
    return path


@contextlib.contextmanager
def _raw_weight_tensors(onnx, params):
    """While MXNet's exporter runs, its weight tensors are built from ``params`` as raw bytes.

    The exporter calls ``onnx.helper.make_tensor(..., vals=array.flatten().tolist(),
    raw=False)`` for each weight; filling the protobuf's repeated field from that list costs
    about a second per ten million values. For a weight it names (a key of ``params``, same
    element count) the patched call takes the bytes of the array itself; every other call
    goes through unchanged.
    """
    helper = onnx.helper
    original = helper.make_tensor

    def make_tensor(name, data_type, dims, vals, raw=False, **kw):
        array = params.get(name)
        if not raw and array is not None and array.size == len(vals):
            # ONNX raw data is little-endian whatever the host is
            np_type = np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).newbyteorder("<")
            data = np.ascontiguousarray(array.asnumpy(), dtype=np_type)
            return original(name, data_type, dims, data.tobytes(), raw=True, **kw)
        return original(name, data_type, dims, vals, raw=raw, **kw)

    helper.make_tensor = make_tensor
    try:
        yield
    finally:
        helper.make_tensor = original


def _context_of(net):
    for param in net.collect_params().values():
        try:
            return param.list_ctx()[0]
        except RuntimeError:  # deferred init: not on any context yet
            continue
    return mx.cpu()


def _params_with_fixed_gammas(symbol_file, params_file):
    """The exported parameters, with gamma = 1 wherever BatchNorm has ``fix_gamma``.

    MXNet ignores the stored gamma of a fix_gamma BatchNorm (Gluon's ``scale=False``) but
    its ONNX exporter copies the stored value, which may be anything.
    """
    with open(symbol_file) as f:
        nodes = json.load(f)["nodes"]
    params = mx.nd.load(params_file)
    for node in nodes:
        attrs = node.get("attrs", {})
        if node["op"] == "BatchNorm" and attrs.get("fix_gamma", "True") in ("True", "1", "true"):
            gamma = nodes[node["inputs"][1][0]]["name"]
            key = "arg:" + gamma
            if key in params:
                params[key] = mx.nd.ones_like(params[key])
    # the exporter takes a dict keyed by plain names (no 'arg:'/'aux:' prefixes)
    return {key.split(":", 1)[1]: value for key, value in params.items()}


def _initializers(model):
    return {init.name: init for init in model.graph.initializer}


def _drop_initializers_from_inputs(model):
    names = set(_initializers(model))
    keep = [inp for inp in model.graph.input if inp.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def _tensor_ranks(model):
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        if info.type.tensor_type.HasField("shape"):
            ranks[info.name] = len(info.type.tensor_type.shape.dim)
    return ranks


def _fix_prelu_slopes(model):
    from onnx import numpy_helper

    inits = _initializers(model)
    ranks = _tensor_ranks(model)
    for node in model.graph.node:
        if node.op_type != "PRelu" or node.input[1] not in inits:
            continue
        slope = numpy_helper.to_array(inits[node.input[1]])
        rank = ranks.get(node.input[0])
        if slope.ndim == 1 and slope.size > 1 and rank is not None and rank > 2:
            # channel axis 1 of an (N, C, H, W) tensor: slope must broadcast as (C, 1, 1)
            fixed = slope.reshape((slope.size,) + (1,) * (rank - 2))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(fixed, node.input[1]))


def _fold_conv_batchnorm(model):
    from onnx import helper, numpy_helper

    from .bn_fold import fold_batchnorm

    inits = _initializers(model)
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {out.name for out in model.graph.output}
    producers = {out: node for node in model.graph.node for out in node.output}
    removed, folds = set(), {}
    for bn in list(model.graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producers.get(bn.input[0])
        if (conv is None or conv.op_type != "Conv" or len(consumers[conv.output[0]]) != 1
                or conv.output[0] in graph_outputs
                or not all(name in inits for name in list(bn.input[1:]) + [conv.input[1]])):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64)
                                  for n in bn.input[1:5])
        weight = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        bias = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
                if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0]))
        new_w, new_b = (a.astype(np.float32)
                        for a in fold_batchnorm(weight, bias, gamma, beta, mean, var, eps))
        w_name, b_name = conv.input[1] + "_bnfolded", conv.output[0] + "_bnfolded_bias"
        model.graph.initializer.extend([numpy_helper.from_array(new_w, w_name),
                                        numpy_helper.from_array(new_b, b_name)])
        folded = helper.make_node("Conv", [conv.input[0], w_name, b_name], [bn.output[0]],
                                  name=(conv.name or conv.output[0]) + "_bnfolded")
        folded.attribute.extend(conv.attribute)
        folds[conv.output[0]] = folded
        removed.add(bn.output[0])
    # node outputs are unique, so they identify nodes (protobuf wrappers are not stable)
    keep = [folds.get(node.output[0], node) for node in model.graph.node
            if node.output[0] not in removed]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {name for node in model.graph.node for name in node.input}
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)
