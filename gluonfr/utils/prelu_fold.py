"""PReLU folded into the convolutions that read it: the rewrite behind the fast CPU graphs.

oneDNN has no per-channel PReLU, so in MXNet 1.9.1's fused (and int8) graphs each PReLU is a
chain of elementwise primitives (:class:`gluonfr.nn.PReLU`: two BatchNorm scalings, a ReLU and a
sum), and in MobileFaceNet those chains take most of the time. Per channel,

    prelu(y) = y + (1 - alpha) * relu(-y),

and a convolution ``K`` that reads ``prelu(y)`` is linear, so ``K(prelu(y)) = K(y) + K'(r)``
with ``r = relu(-y)`` and ``K'`` the same convolution with its weights for input channel ``c``
times ``1 - alpha_c``.

:func:`fold_prelu` rewrites the graph into that form: ``r`` is a 1x1 depthwise convolution
of ``y`` (weights -1) with ReLU, one oneDNN primitive; ``K'`` runs on ``r`` and ``K`` on ``y``,
the second run adding the first in oneDNN's sum post-op (a BatchNorm after ``K`` is folded into
both runs, and a residual sum after it is taken into the first). The values are those of the
original graph up to float rounding.

Why this form and not the obvious ``conv_a(x) + relu(conv_b(x))`` at the PReLU itself: in
MXNet 1.9.1's int8 convolution the sum post-op is only right when the tensor added has the
output's type; a ReLU output (uint8) added into a signed (int8) output, or an int8 tensor into
a ReLU'd (uint8) output, comes back wrong. Here every sum adds int8 into int8.

The rewrite doubles the consumer convolutions' work, which pays only when they are cheap next
to the elementwise chain: a PReLU is folded when its consumers together (plus the 1x1 pass) cost
at most ``max_macs`` multiply-adds per element of the PReLU's output. MobileFaceNet's PReLUs
sit before depthwise and pointwise layers (3 to 129 per element: all folded); IR-ResNet's
before full 3x3 convolutions (145 to 4,609: only the strided first one of stage 1 is folded at
the default). A PReLU is left as it is when anything other than a convolution's data input reads it.
"""
import json

import mxnet as mx
import numpy as np

from .bn_fold import fold_batchnorm
from .summary import _tuple

__all__ = ["fold_prelu", "DEFAULT_MAX_MACS"]

#: Fold a PReLU when its consumer convolutions cost at most this many multiply-adds per
#: PReLU output element (the measurement behind it is in docs/performance.rst).
DEFAULT_MAX_MACS = 256

_TRUE = ("True", "true", "1")


class _Graph:
    """An MXNet symbol's JSON graph, edited by appending nodes and redirecting entries."""

    def __init__(self, sym):
        self.json = json.loads(sym.tojson())
        self.nodes = self.json["nodes"]
        self.original = len(self.nodes)
        self.consumers = {}
        for i, node in enumerate(self.nodes):
            for slot, entry in enumerate(node["inputs"]):
                self.consumers.setdefault(entry[0], []).append((i, slot))
        for entry in self.json["heads"]:
            self.consumers.setdefault(entry[0], []).append((-1, 0))
        self.redirect = {}

    def op(self, i):
        return self.nodes[i]["op"]

    def attrs(self, i):
        return self.nodes[i].get("attrs", {})

    def source(self, i, slot):
        return self.nodes[i]["inputs"][slot][0]

    def only_consumer(self, i):
        users = self.consumers.get(i, [])
        return users[0] if len(users) == 1 and users[0][0] >= 0 else (None, None)

    def add(self, op, name, inputs, attrs=None):
        node = {"op": op, "name": name, "inputs": [[i, 0, 0] for i in inputs]}
        if attrs:
            node["attrs"] = attrs
        self.nodes.append(node)
        return len(self.nodes) - 1

    def symbol(self):
        """The edited graph (entries redirected, unreachable nodes dropped) as a Symbol."""
        def target(i):
            while i in self.redirect:
                i = self.redirect[i]
            return i

        heads = [[target(e[0])] + e[1:] for e in self.json["heads"]]
        order, index = [], {}
        for head in heads:  # iterative post-order: graphs are deeper than Python's recursion
            stack = [(head[0], False)]
            while stack:
                i, expanded = stack.pop()
                if i in index:
                    continue
                if expanded:
                    index[i] = len(order)
                    order.append(i)
                    continue
                stack.append((i, True))
                stack.extend((target(e[0]), False) for e in reversed(self.nodes[i]["inputs"]))
        nodes = []
        for i in order:
            node = dict(self.nodes[i])
            node["inputs"] = [[index[target(e[0])]] + e[1:] for e in node["inputs"]]
            nodes.append(node)
        graph = {"nodes": nodes, "heads": [[index[e[0]]] + e[1:] for e in heads],
                 "arg_nodes": [k for k, n in enumerate(nodes) if n["op"] == "null"],
                 "attrs": self.json.get("attrs", {})}
        return mx.sym.load_json(json.dumps(graph))


def _prelus(g):
    """(prelu node, input node, slope variable node) of each PReLU, either form."""
    for i in range(g.original):
        if g.op(i) == "LeakyReLU" and g.attrs(i).get("act_type") == "prelu":
            yield i, g.source(i, 0), g.source(i, 1)
        if g.op(i) != "elemwise_add":
            continue
        # gluonfr.nn.PReLU: BatchNorm(y, alpha) + BatchNorm(relu(y), 1 - alpha)
        a, b = g.source(i, 0), g.source(i, 1)
        for lin, pos in ((a, b), (b, a)):
            if g.op(lin) != "BatchNorm" or g.op(pos) != "BatchNorm":
                continue
            y, alpha = g.source(lin, 0), g.source(lin, 1)
            relu, one_minus = g.source(pos, 0), g.source(pos, 1)
            if (g.op(relu) == "Activation" and g.attrs(relu).get("act_type") == "relu"
                    and g.source(relu, 0) == y and g.op(one_minus) == "_rminus_scalar"
                    and float(g.attrs(one_minus).get("scalar", "nan")) == 1.0
                    and g.source(one_minus, 0) == alpha):
                yield i, y, alpha
                break


def _consumer_macs(attrs):
    """Multiply-adds of a convolution per element of its input (padding aside)."""
    kernel = int(np.prod(_tuple(attrs["kernel"])))
    stride = int(np.prod(_tuple(attrs.get("stride", "(1, 1)")) or (1,)))
    return int(attrs["num_filter"]) * kernel / (int(attrs.get("num_group", "1")) * stride)


def _scaled_inputs(weight, factor):
    """``weight`` (O, C / groups, kh, kw) with input channel c's weights times ``factor[c]``."""
    out_channels, per_group = weight.shape[:2]
    groups = factor.shape[0] // per_group
    # output o belongs to group o // (O / groups), whose inputs are channels g * per_group + j
    group_of = np.arange(out_channels) // (out_channels // groups)
    channel = group_of[:, None] * per_group + np.arange(per_group)[None, :]
    return weight * factor[channel].reshape(channel.shape + (1,) * (weight.ndim - 2))


def fold_prelu(sym, args, auxs, max_macs=None):
    """Rewrite the PReLUs of an inference graph into its convolutions (see the module notes).

    Parameters
    ----------
    sym : mxnet.symbol.Symbol
        The float32 inference graph (``net(mx.sym.var('data'))`` or an exported symbol).
    args, auxs : dict of str to NDArray
        Its argument and auxiliary values (the slopes, weights and BatchNorm statistics).
    max_macs : float, optional
        Fold a PReLU when its consumers cost at most this many multiply-adds per element
        (default :data:`DEFAULT_MAX_MACS`; 0 folds none).

    Returns
    -------
    (Symbol, dict, dict, list of str)
        The new graph, its arguments and auxiliary states (new weights for the rewritten
        convolutions, unused ones dropped) and the names of the PReLUs folded.
    """
    max_macs = DEFAULT_MAX_MACS if max_macs is None else max_macs
    g = _Graph(sym)
    args, auxs = dict(args), dict(auxs)

    def value(i):
        name = g.nodes[i]["name"]
        return (args[name] if name in args else auxs[name]).asnumpy().astype(np.float64)

    def variable(name, array):
        args[name] = mx.nd.array(np.asarray(array, dtype=np.float32))
        return g.add("null", name, [])

    folded, reads = [], {}
    for prelu, y, alpha_node in _prelus(g):
        users = g.consumers.get(prelu, [])
        if (not users or g.nodes[alpha_node]["name"] not in args
                or any(i < 0 or g.op(i) != "Convolution" or slot != 0 for i, slot in users)
                or sum(_consumer_macs(g.attrs(i)) for i, _ in users) + 1 > max_macs):
            continue
        alpha = value(alpha_node)
        name = g.nodes[prelu]["name"]
        channels = alpha.shape[0]
        minus_one = variable(f"{name}_fold_weight", -np.ones((channels, 1, 1, 1)))
        r = g.add("Convolution", f"{name}_fold", [y, minus_one],
                  {"kernel": "(1, 1)", "num_filter": str(channels), "num_group": str(channels),
                   "no_bias": "True"})
        r = g.add("Activation", f"{name}_fold_relu", [r], {"act_type": "relu"})
        for conv, _ in users:
            reads[conv] = (y, r, 1.0 - alpha)
        folded.append(name)

    for conv, (y, r, slope) in reads.items():
        attrs, name = dict(g.attrs(conv)), g.nodes[conv]["name"]
        weight = value(g.source(conv, 1))
        bias = (np.zeros(weight.shape[0]) if attrs.get("no_bias", "False") in _TRUE
                else value(g.source(conv, 2)))
        out = conv
        bn, slot = g.only_consumer(conv)
        if bn is not None and slot == 0 and g.op(bn) == "BatchNorm":
            # BatchNorm(K(y) + K(r)) is not K'(y) + K'(r) unless it is folded into both
            bn_attrs = g.attrs(bn)
            gamma, beta, mean, var = (value(g.source(bn, k)) for k in range(1, 5))
            if bn_attrs.get("fix_gamma", "True") in _TRUE:
                gamma = np.ones_like(gamma)
            weight, bias = fold_batchnorm(weight, bias, gamma, beta, mean, var,
                                          float(bn_attrs.get("eps", "1e-3")))
            out = bn
        # the run on r first: its output, an int8 tensor of its own, is the smaller term
        first = g.add("Convolution", f"{name}_fold_r", [
            r, variable(f"{name}_fold_r_weight", _scaled_inputs(weight, slope))],
            dict(attrs, no_bias="True"))
        add, _ = g.only_consumer(out)
        if add is not None and g.op(add) == "elemwise_add" and g.source(add, 0) != g.source(add, 1):
            # a residual sum after K goes into the first run's sum post-op
            other = g.source(add, 1) if g.source(add, 0) == out else g.source(add, 0)
            first = g.add("elemwise_add", f"{name}_fold_residual", [first, other])
            out = add
        second = g.add("Convolution", f"{name}_fold_y", [
            y, variable(f"{name}_fold_y_weight", weight),
            variable(f"{name}_fold_y_bias", bias)], dict(attrs, no_bias="False"))
        g.redirect[out] = g.add("elemwise_add", f"{name}_fold_sum", [second, first])

    if not folded:
        return sym, args, auxs, []
    new = g.symbol()
    arg_names, aux_names = set(new.list_arguments()), set(new.list_auxiliary_states())
    return (new, {k: v for k, v in args.items() if k in arg_names},
            {k: v for k, v in auxs.items() if k in aux_names}, folded)
