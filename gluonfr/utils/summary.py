"""Parameter and multiply-add counts of a Gluon network, read off its symbolic graph.

Tracing the network symbolically (instead of hooking blocks) sees every operator,
including the ones a block calls inside ``hybrid_forward`` (``F.FullyConnected`` in a
cosine classifier, the GDC depthwise convolution, ...), works whether the network is
hybridized or not, and needs no initialised parameters: shapes come from ``infer_shape``.
"""
import json

import mxnet as mx
import numpy as np

from ..nn.prelu import native_prelu

__all__ = ["summary"]


def _conv_macs(attrs, in_shape, out_shape):
    kernel = np.prod(_tuple(attrs["kernel"]))
    groups = int(attrs.get("num_group", 1))
    # every output element is a dot product over (C_in / groups) * kh * kw inputs
    return int(np.prod(out_shape)) * (in_shape[1] // groups) * int(kernel)


def _deconv_macs(attrs, in_shape, out_shape):
    kernel = np.prod(_tuple(attrs["kernel"]))
    groups = int(attrs.get("num_group", 1))
    # every input element is scattered into (C_out / groups) * kh * kw outputs
    return int(np.prod(in_shape)) * (out_shape[1] // groups) * int(kernel)


def _fc_macs(attrs, in_shape, out_shape):
    flatten = attrs.get("flatten", "True") in ("True", "true", "1")
    in_features = int(np.prod(in_shape[1:])) if flatten else in_shape[-1]
    rows = in_shape[0] if flatten else int(np.prod(in_shape[:-1]))
    return rows * in_features * int(attrs["num_hidden"])


_MACS = {
    "Convolution": _conv_macs,
    "Deconvolution": _deconv_macs,
    "FullyConnected": _fc_macs,
}


def _tuple(text):
    return tuple(int(v) for v in text.strip("()[] ").split(",") if v.strip())


def _trace(net, input_shape):
    data = mx.sym.var("data")
    # the textbook PReLU graph: counts describe the network, not how a kernel computes it
    with native_prelu(net):
        out = net(data)
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(out))
    internals = out.get_internals()
    arg_shapes, out_shapes, aux_shapes = internals.infer_shape(data=tuple(input_shape))
    if arg_shapes is None:
        raise ValueError(f"cannot infer the shapes of {type(net).__name__} "
                         f"for input_shape={tuple(input_shape)}")
    shapes = dict(zip(internals.list_arguments(), arg_shapes))
    shapes.update(zip(internals.list_auxiliary_states(), aux_shapes))
    shapes.update(zip(internals.list_outputs(), out_shapes))
    return json.loads(out.tojson())["nodes"], shapes, set(internals.list_auxiliary_states())


def summary(net, input_shape=(1, 3, 112, 112), print_table=True, file=None):
    """Count the parameters and multiply-adds of a network and print a per-layer table.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        The network. It does not need initialised parameters.
    input_shape : tuple of int
        Shape of the input, batch included. Multiply-adds are counted for this whole
        input, so with the default batch of 1 they are per image.
    print_table : bool
        Print one row per operator that holds parameters or does multiply-adds.
    file : file-like, optional
        Where to print (default: standard output).

    Returns
    -------
    dict
        ``params``: learnable parameter elements (every weight of the graph, BatchNorm
        gamma/beta and PReLU slopes included, running statistics excluded);
        ``aux``: running-statistic elements (BatchNorm mean/variance);
        ``macs``: multiply-adds of convolutions (depthwise counted per group),
        deconvolutions and fully connected layers;
        ``output_shape``: the output shape (a list of shapes for several outputs);
        ``layers``: the table rows as dicts (name, op, output_shape, params, macs).

    Examples
    --------
    >>> from gluonfr.model_zoo import get_model
    >>> info = summary(get_model('mobilefacenet'), print_table=False)
    >>> round(info['macs'] / 1e6)
    221
    """
    nodes, shapes, aux_names = _trace(net, input_shape)
    rows, total_params, total_aux, total_macs = [], 0, 0, 0
    counted = set()
    for node in nodes:
        if node["op"] == "null":
            continue
        attrs = node.get("attrs", {})
        inputs = [nodes[i[0]] for i in node["inputs"]]
        params = aux = 0
        for inp in inputs:
            if inp["op"] != "null" or inp["name"] == "data" or inp["name"] in counted:
                continue
            counted.add(inp["name"])  # a variable read by two operators counts once
            size = int(np.prod(shapes[inp["name"]]))
            if inp["name"] in aux_names:
                aux += size
            else:
                params += size
        out_shape = shapes.get(node["name"] + "_output")
        if out_shape is None:  # multi-output ops (e.g. BatchNorm with output_mean_var)
            out_shape = shapes.get(node["name"] + "_output0", ())
        macs = 0
        if node["op"] in _MACS:
            data_in = inputs[0]
            in_name = (data_in["name"] if data_in["op"] == "null"
                       else data_in["name"] + "_output")
            in_shape = shapes.get(in_name) or shapes.get(data_in["name"] + "_output0")
            macs = _MACS[node["op"]](attrs, in_shape, out_shape)
        total_params += params
        total_aux += aux
        total_macs += macs
        if params or macs:
            rows.append({"name": node["name"], "op": node["op"],
                         "output_shape": tuple(out_shape), "params": params, "macs": macs})
    out_shape = _output_shapes(net, input_shape)
    info = {"params": total_params, "aux": total_aux, "macs": total_macs,
            "output_shape": out_shape, "layers": rows}
    if print_table:
        _print_table(info, file)
    return info


def _output_shapes(net, input_shape):
    out = net(mx.sym.var("data"))
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    shapes = [tuple(mx.sym.Group(outs).infer_shape(data=tuple(input_shape))[1][i])
              for i in range(len(outs))]
    return shapes[0] if len(shapes) == 1 else shapes


def _print_table(info, file):
    header = f"{'layer':<40} {'op':<16} {'output shape':<22} {'params':>12} {'MACs':>15}"
    lines = [header, "-" * len(header)]
    for row in info["layers"]:
        lines.append(f"{row['name'][:40]:<40} {row['op'][:16]:<16} "
                     f"{str(row['output_shape']):<22} {row['params']:>12,} {row['macs']:>15,}")
    lines.append("-" * len(header))
    lines.append(f"parameters: {info['params']:,} ({info['params'] / 1e6:.3f} M)  "
                 f"running statistics: {info['aux']:,}")
    lines.append(f"multiply-adds: {info['macs']:,} ({info['macs'] / 1e6:.1f} M)")
    print("\n".join(lines), file=file)
