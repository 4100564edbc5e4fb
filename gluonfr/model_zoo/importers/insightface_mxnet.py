"""insightface MXNet checkpoints (``model-symbol.json`` + ``model-0000.params``).

The architecture is read from the symbol JSON (each node's ``op`` and attributes: kernel,
stride, pad, ``num_group``, ``eps``, ``fix_gamma``, ``act_type``, the input scalars), never
assumed from a version: fresnet 'E' units of any depth and width become :class:`IResNet`
(SE units ``se_iresnet*``), fmobilefacenet with the GDC head becomes :class:`MobileFaceNet`.
Parameters are found through the graph's own variable names (``arg:``/``aux:`` keys), so both
``fc1_weight`` and ``pre_fc1_weight`` namings load.
"""
import ast
import glob
import json
import os
import re

import numpy as np

from . import ImportFormatError, register_format
from .graph import Graph, Node, build_network, match_any, match_iresnet, match_mobilefacenet

__all__ = ["load_param_file", "read_symbol_graph", "import_insightface_mxnet", "checkpoint_files"]

HINT = ("scripts/eval.py --symbol SYMBOL.json --params FILE.params evaluates any MXNet "
        "symbol as it is.")

_ADD = {"elemwise_add", "_Plus", "_plus", "broadcast_add", "_add", "broadcast_plus"}
_MUL = {"broadcast_mul", "elemwise_mul", "_mul", "_Mul"}
_PASS = {"_copy", "identity", "Dropout", "Flatten", "BlockGrad", "_copyto"}


def checkpoint_files(source):
    """(symbol json, params file) of ``'prefix,epoch'`` or ``'prefix-symbol.json'``."""
    match = re.fullmatch(r"(.+),(\d+)", source)
    if match:
        prefix, epoch = match.group(1), int(match.group(2))
        symbol, params = f"{prefix}-symbol.json", f"{prefix}-{epoch:04d}.params"
    elif source.endswith("-symbol.json"):
        symbol = source
        prefix = source[:-len("-symbol.json")]
        found = sorted(glob.glob(glob.escape(prefix) + "-[0-9][0-9][0-9][0-9].params"))
        if not found:
            raise ImportFormatError(f"{source}: no parameter file {prefix}-NNNN.params "
                                    f"beside the symbol")
        params = found[-1]  # the last epoch, as insightface's scripts pick
    else:
        raise ImportFormatError(f"{source}: expected an insightface checkpoint 'PREFIX,EPOCH' "
                                f"(e.g. 'model-r100-ii/model,0') or a '-symbol.json' path")
    for path in (symbol, params):
        if not os.path.isfile(path):
            raise ImportFormatError(f"{source}: {path} does not exist")
    return symbol, params


def _detect(source):
    match = re.fullmatch(r"(.+),(\d+)", source)
    symbol = f"{match.group(1)}-symbol.json" if match else source
    if not symbol.endswith("-symbol.json"):
        return False
    try:
        with open(symbol, encoding="utf-8") as f:
            head = f.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return False
    # insightface's own layer names (fresnet units, fmobilefacenet layers, the fc1 embedding)
    return any(key in head for key in ('"stage1_unit1_', '"conv_1_conv2d', '"fc1"',
                                       '"pre_fc1"'))


def _attr(node):
    # MXNet >= 1.0 writes "attrs"; 0.x wrote "param" or "attr"
    return node.get("attrs") or node.get("param") or node.get("attr") or {}


def _tuple(text, default):
    if text is None:
        return default
    value = ast.literal_eval(text)
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _bool(text, default):
    return default if text is None else str(text).strip().lower() in ("true", "1")


def load_param_file(path, expected="named parameters"):
    """An MXNet ``.params`` file as ``{name: NDArray}``; errors name the file (and what
    names were ``expected`` when it holds an unnamed list)."""
    import mxnet as mx

    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ImportFormatError(f"{path}: not an MXNet parameter file "
                                f"({str(err).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ImportFormatError(f"{path}: holds unnamed arrays, expected {expected}")
    return loaded


def read_symbol_graph(symbol_path, params_path):
    """Read an MXNet symbol JSON and its parameter file into a :class:`Graph`."""
    try:
        with open(symbol_path, encoding="utf-8") as f:
            spec = json.load(f)
        nodes = spec["nodes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ImportFormatError(f"{symbol_path}: not an MXNet symbol JSON ({err})") from None
    loaded = load_param_file(params_path, "arg:/aux: keys")
    arrays = {}
    for key, value in loaded.items():
        arrays[key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key] = value

    def param(var, node, role):
        if var not in arrays:
            raise ImportFormatError(f"{params_path}: no parameter {var!r} ({role} of node "
                                    f"{node['name']!r} in {symbol_path})")
        return arrays[var].asnumpy()

    graph = Graph(symbol_path, "data", HINT)
    names = [n["name"] for n in nodes]
    for node in nodes:
        op, name, attrs = node["op"], node["name"], _attr(node)
        if op == "null":
            continue
        ins = [names[i[0]] for i in node["inputs"]]
        data = ins[:1]
        p, a, kind = {}, {}, op
        if op == "Convolution":
            kind = "conv"
            a = {"kernel": _tuple(attrs.get("kernel"), None),
                 "stride": _tuple(attrs.get("stride"), (1, 1)),
                 "pad": _tuple(attrs.get("pad"), (0, 0)),
                 "groups": int(attrs.get("num_group", 1))}
            if _tuple(attrs.get("dilate"), (1, 1)) != (1, 1):
                kind = op  # dilated convs are no part of these architectures
            p["weight"] = param(ins[1], node, "weight")
            if not _bool(attrs.get("no_bias"), False):
                p["bias"] = param(ins[2], node, "bias")
        elif op == "BatchNorm":
            kind = "bn"
            a = {"eps": float(attrs.get("eps", 1e-3))}  # MXNet's default epsilon
            gamma = param(ins[1], node, "gamma")
            if _bool(attrs.get("fix_gamma"), True):  # MXNet's default: gamma acts as 1
                gamma = np.ones_like(gamma)
            p = {"gamma": gamma, "beta": param(ins[2], node, "beta"),
                 "mean": param(ins[3], node, "moving_mean"),
                 "var": param(ins[4], node, "moving_var")}
            if int(attrs.get("axis", 1)) != 1:
                kind = op
        elif op == "LeakyReLU":
            act = attrs.get("act_type", "leaky")
            if act == "prelu":
                kind, p = "prelu", {"alpha": param(ins[1], node, "gamma")}
            elif act == "leaky":
                kind, p = "prelu", {"alpha": np.array([float(attrs.get("slope", 0.25))])}
        elif op in ("Activation", "relu", "sigmoid"):
            act = attrs.get("act_type", op)
            kind = act if act in ("relu", "sigmoid") else op
        elif op in _ADD:
            kind = "add"
            data = ins
        elif op in _MUL:
            kind = "mul"
            data = ins
        elif op in ("_minus_scalar", "_plus_scalar", "_mul_scalar", "_div_scalar"):
            value = float(attrs["scalar"])
            kind = "sub_scalar" if op in ("_minus_scalar", "_plus_scalar") else "mul_scalar"
            a = {"value": {"_minus_scalar": value, "_plus_scalar": -value,
                           "_mul_scalar": value, "_div_scalar": 1.0 / value}[op]}
        elif op == "Pooling":
            if _bool(attrs.get("global_pool"), False) and attrs.get("pool_type") == "avg":
                kind = "global_avg_pool"
        elif op == "FullyConnected":
            kind = "fc"
            p["weight"] = param(ins[1], node, "weight")
            if not _bool(attrs.get("no_bias"), False):
                p["bias"] = param(ins[2], node, "bias")
            weight = p["weight"]
            p["weight"] = weight.reshape(weight.shape[0], -1)
        elif op in _PASS:
            kind = "identity" if op != "Dropout" else "dropout"
        graph.add(Node(name, kind, data, a, p, source_op=op))
    return graph.finish()


def _import(source, ctx):
    symbol, params = checkpoint_files(source)
    graph = read_symbol_graph(symbol, params)
    name, kwargs, layers = match_any(graph, _matchers(graph))
    net = build_network(name, kwargs, layers, symbol, ctx)
    net.import_info = {"name": name, "kwargs": kwargs, "fmt": "insightface-mxnet",
                       "source": source, "files": [symbol, params],
                       "input": {"color": "RGB", "mean": kwargs["input_mean"],
                                 "scale": kwargs["input_scale"]}}
    return net


def _matchers(graph):
    # the family is told by insightface's layer names; the matcher then checks everything
    names = " ".join(n.name for n in graph.nodes[:8])
    if "conv_1_conv2d" in names or "conv_1" in names:
        return [match_mobilefacenet]
    if "conv0" in names:
        return [match_iresnet]
    return [match_iresnet, match_mobilefacenet]


import_insightface_mxnet = register_format("insightface-mxnet", _detect)(_import)
