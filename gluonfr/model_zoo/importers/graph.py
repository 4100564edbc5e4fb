"""One graph form for every imported format, and the matchers that turn it into our networks.

Each format reader (an MXNet symbol, an ONNX graph, a PyTorch state dict laid out as
arcface_torch builds it) produces a :class:`Graph`: nodes with a normalised ``op``, their
input tensors, attributes and parameter arrays (numpy). A matcher (:func:`match_iresnet`,
:func:`match_mobilefacenet`) follows the data flow from the input, checks every node against
the architecture, reads depth, widths, embedding size and BatchNorm epsilons from the graph,
and returns the registered name, the constructor arguments and the parameter arrays in the
network's forward order; :func:`build_network` loads them. The first node that does not fit
is named in a :class:`GraphMismatch`.

Normalised ops: ``conv`` (kernel, stride, pad, groups; weight, optional bias), ``bn`` (eps;
gamma, beta, mean, var), ``prelu`` (alpha (C,)), ``relu``, ``add``, ``fc`` (weight (out, in),
optional bias), ``sub_scalar`` / ``mul_scalar`` (value), ``global_avg_pool``, ``sigmoid``,
``mul``. Pass-through ops (identity, dropout, flatten) are removed by :meth:`Graph.finish`.
"""
import collections

import numpy as np

__all__ = ["Graph", "Node", "GraphMismatch", "match_iresnet", "match_mobilefacenet",
           "match_any", "build_network"]

PASSTHROUGH = {"identity", "dropout", "flatten"}


class GraphMismatch(ValueError):
    """The source graph is not one of the architectures the importer can rebuild."""


class Node:
    """One operation: ``op`` (normalised), input tensor names, attributes, parameters."""

    __slots__ = ("name", "op", "inputs", "attrs", "params", "source_op")

    def __init__(self, name, op, inputs, attrs=None, params=None, source_op=None):
        self.name, self.op, self.inputs = name, op, list(inputs)
        self.attrs = attrs or {}
        self.params = params or {}
        self.source_op = source_op or op

    def __repr__(self):
        return f"{self.name!r} ({self.source_op})"


class Graph:
    """Nodes in topological order; each node's output tensor is named after the node.

    Parameters
    ----------
    source : str
        File the graph came from (error messages).
    input_name : str
        The image input tensor.
    hint : str
        Appended to mismatch errors (what to run instead).
    """

    def __init__(self, source, input_name, hint=""):
        self.source, self.input, self.hint = source, input_name, hint
        self.nodes = []
        self._alias = {}

    def add(self, node):
        self.nodes.append(node)
        return node

    def finish(self):
        """Drop pass-through nodes and index consumers; returns self."""
        kept = []
        for node in self.nodes:
            node.inputs = [self._alias.get(t, t) for t in node.inputs]
            if node.op in PASSTHROUGH:
                self._alias[node.name] = node.inputs[0]
            else:
                kept.append(node)
        self.nodes = kept
        self.consumers = collections.defaultdict(list)
        for node in kept:
            for t in node.inputs:
                self.consumers[t].append(node)
        self.by_name = {n.name: n for n in kept}
        return self


class _Walker:
    """Follows the data flow, consuming each node once, with errors that name the node."""

    def __init__(self, graph, arch):
        self.g, self.arch = graph, arch
        self.used = set()

    def fail(self, node, expected, after):
        where = f"node {node!r}" if node is not None else "the graph's end"
        raise GraphMismatch(
            f"{self.g.source}: {where} does not fit {self.arch}: expected {expected} after "
            f"{after}. {self.g.hint}".rstrip())

    def _after(self, tensor):
        node = self.g.by_name.get(tensor)
        return repr(node) if node is not None else f"input {tensor!r}"

    def consumers(self, tensor):
        return [n for n in self.g.consumers.get(tensor, ()) if n.name not in self.used]

    def peek(self, tensor, ops):
        found = [n for n in self.consumers(tensor) if n.op in ops]
        return found[0] if found else None

    def take(self, tensor, ops, expected=None, check=None):
        """The unused consumer of ``tensor`` whose op is in ``ops`` (and passes ``check``)."""
        ops = (ops,) if isinstance(ops, str) else ops
        expected = expected or " or ".join(ops)
        candidates = self.consumers(tensor)
        for node in candidates:
            if node.op in ops and (check is None or check(node)):
                self.used.add(node.name)
                return node
        self.fail(candidates[0] if candidates else None, expected, self._after(tensor))

    def conv(self, tensor, kernel=None, stride=None, depthwise=None, bias=None, what="conv"):
        def ok(n):
            a = n.attrs
            k = tuple(a["kernel"])
            if kernel != "any":
                if kernel is not None and k != (kernel, kernel):
                    return False
                if tuple(a["pad"]) != (k[0] // 2, k[1] // 2):
                    return False
            if stride is not None and tuple(a["stride"]) != (stride, stride):
                return False
            out_c, in_per_group = n.params["weight"].shape[:2]
            groups = a.get("groups", 1)
            if depthwise is True and not (groups == out_c and in_per_group == 1):
                return False
            if depthwise is False and groups != 1:
                return False
            return bias is None or ("bias" in n.params) == bias
        return self.take(tensor, "conv", what, ok)

    def conv_bn(self, tensor, **conv_kw):
        """A bias-free conv and its BatchNorm (a conv with bias and no BatchNorm after it is
        an exporter's folded pair: the bias becomes the BatchNorm's shift)."""
        conv = self.conv(tensor, **conv_kw)
        bn = self.peek(conv.name, ("bn",))
        if bn is not None:
            self.used.add(bn.name)
            params = dict(bn.params)
            if "bias" in conv.params:  # BN(conv + b) == BN'(conv) with mean - b
                params["mean"] = params["mean"] - conv.params["bias"]
            bn = Node(bn.name, "bn", bn.inputs, bn.attrs, params, bn.source_op)
        else:
            channels = conv.params["weight"].shape[0]
            shift = conv.params.get("bias", np.zeros(channels, np.float32))
            bn = Node(conv.name, "bn", [conv.name], {"eps": None, "folded": True},
                      {"gamma": np.ones(channels, np.float32), "beta": shift,
                       "mean": np.zeros(channels, np.float32),
                       "var": np.ones(channels, np.float32)})
        return conv, bn

    def act(self, tensor, channels):
        node = self.take(tensor, ("prelu", "relu"), "a PReLU or ReLU")
        if node.op == "relu":  # ReLU is PReLU with slope 0: same network, same files
            return node, np.zeros(channels, np.float32)
        alpha = np.asarray(node.params["alpha"], np.float32).reshape(-1)
        if alpha.size == 1:
            alpha = np.full(channels, alpha[0], np.float32)
        return node, alpha

    def out_of(self, bn):
        return bn.inputs[0] if bn.attrs.get("folded") else bn.name


class _Layers:
    """The parameter arrays in the network's forward order: (kind, arrays, source node)."""

    def __init__(self):
        self.items = []
        self.eps = []
        self.input_in_graph = False  # the source graph normalises its own input

    def conv(self, node):
        self.items.append(("conv", {"weight": node.params["weight"]}, node))

    def bn(self, node, role="body"):
        p = node.params
        self.items.append(("bn", {"gamma": p["gamma"], "beta": p["beta"],
                                  "running_mean": p["mean"], "running_var": p["var"]}, node))
        self.eps.append((len(self.items) - 1, node.attrs.get("eps"), role))

    def prelu(self, alpha, node):
        self.items.append(("prelu", {"alpha": alpha}, node))

    def conv_bias(self, node):
        bias = node.params.get("bias")
        if bias is None:
            bias = np.zeros(node.params["weight"].shape[0], np.float32)
        self.items.append(("conv", {"weight": node.params["weight"], "bias": bias}, node))

    def fc(self, node):
        bias = node.params.get("bias")
        if bias is None:
            bias = np.zeros(node.params["weight"].shape[0], np.float32)
        self.items.append(("fc", {"weight": node.params["weight"], "bias": bias}, node))

    def settle_eps(self, roles, default):
        """Pick one epsilon per role (the most common) and fold the others into the variance.

        BatchNorm computes ``(x - mean) / sqrt(var + eps)``, so an epsilon ``e`` equals ours
        ``e'`` exactly with ``var + e - e'`` as the variance. Folded conv/BN pairs of an
        exporter carry no epsilon: their unit variance becomes ``1 - e'``.
        """
        chosen = {}
        for role in roles:
            values = [e for _, e, r in self.eps if r == role and e is not None]
            chosen[role] = (collections.Counter(values).most_common(1)[0][0]
                            if values else default)
        for index, eps, role in self.eps:
            arrays = self.items[index][1]
            target = chosen[role]
            src = 0.0 if eps is None else eps
            if src != target:
                var = np.asarray(arrays["running_var"], np.float64) + src - target
                arrays["running_var"] = var.astype(np.float32)
        return chosen


def _normalize_input(w, tensor):
    """In-graph ``(x - mean) * scale``: returns (tensor after it, mean, scale) or None."""
    mean, scale = 0.0, 1.0
    found = False
    while True:
        node = w.peek(tensor, ("sub_scalar", "mul_scalar"))
        if node is None or len(w.consumers(tensor)) != 1:
            break
        w.used.add(node.name)
        found = True
        if node.op == "sub_scalar":
            mean += node.attrs["value"] / scale
        else:
            scale *= node.attrs["value"]
        tensor = node.name
    return tensor, (mean, scale) if found else None


def _head(w, layers, tensor, channels):
    """fc (from the whole final map) and the embedding BatchNorm."""
    fc = w.take(tensor, "fc", "the embedding layer (FullyConnected/Gemm)")
    weight = fc.params["weight"]
    in_units = weight.shape[1]
    if in_units % channels:
        w.fail(fc, f"a dense layer over {channels} x H x W inputs", repr(fc))
    side = int(round((in_units // channels) ** 0.5))
    if side * side * channels != in_units:
        w.fail(fc, "a square final feature map", repr(fc))
    bn = w.take(fc.name, "bn", "the embedding BatchNorm")
    gamma = np.asarray(bn.params["gamma"], np.float64)
    params = dict(bn.params)
    fc_params = dict(fc.params)
    if not np.all(gamma == 1):
        # our embedding BatchNorm has no scale (gamma fixed at 1, as insightface's fc1):
        # |gamma| moves into the variance, its sign into the dense layer and the mean
        if np.any(gamma == 0):
            w.fail(bn, "an embedding BatchNorm with non-zero scale", repr(fc))
        eps = bn.attrs.get("eps") or 0.0
        sign = np.sign(gamma)
        params["var"] = ((np.asarray(bn.params["var"], np.float64) + eps) / gamma ** 2
                         - eps).astype(np.float32)
        params["mean"] = (np.asarray(bn.params["mean"]) * sign).astype(np.float32)
        fc_params["weight"] = (weight * sign[:, None]).astype(np.float32)
        if "bias" in fc_params:
            fc_params["bias"] = (fc_params["bias"] * sign).astype(np.float32)
        params["gamma"] = np.ones_like(params["gamma"])
    layers.fc(Node(fc.name, "fc", fc.inputs, fc.attrs, fc_params, fc.source_op))
    layers.bn(Node(bn.name, "bn", bn.inputs, bn.attrs, params, bn.source_op), "embedding")
    return weight.shape[0], side * 16, bn


def match_iresnet(graph, default_eps=2e-5, default_input=(127.5, 1.0 / 128)):
    """Match an LResNet-E-IR (insightface fresnet 'E' / arcface_torch iresnet) graph.

    Returns
    -------
    (name, kwargs, layers)
        Registered name, constructor arguments, parameter arrays in forward order.
    """
    w = _Walker(graph, "an IR-ResNet (iresnet / se_iresnet)")
    layers = _Layers()
    t, norm = _normalize_input(w, graph.input)
    layers.input_in_graph = norm is not None
    conv, bn = w.conv_bn(t, kernel=3, stride=1, depthwise=False, what="the 3x3 stem conv")
    layers.conv(conv)
    layers.bn(bn)
    width = conv.params["weight"].shape[0]
    node, alpha = w.act(w.out_of(bn), width)
    layers.prelu(alpha, node)
    t = node.name
    units, channels, use_se = [], [], None
    while True:
        bn1 = w.take(t, "bn", "a BatchNorm (IR unit or head)")
        if w.peek(bn1.name, ("fc",)) is not None:
            break
        layers.bn(bn1)
        c1, b2 = w.conv_bn(bn1.name, kernel=3, stride=1, depthwise=False,
                           what="the first 3x3 conv of an IR unit")
        out_c = c1.params["weight"].shape[0]
        a, alpha = w.act(w.out_of(b2), out_c)
        c2, b3 = w.conv_bn(a.name, kernel=3, depthwise=False,
                           what="the second 3x3 conv of an IR unit")
        stride = c2.attrs["stride"][0]
        for item in ((layers.conv, c1), (layers.bn, b2)):
            item[0](item[1])
        layers.prelu(alpha, a)
        layers.conv(c2)
        layers.bn(b3)
        x = w.out_of(b3)
        se = w.peek(x, ("global_avg_pool",))
        if use_se is None:
            use_se = se is not None
        if use_se:
            pool = w.take(x, "global_avg_pool", "the SE block's pooling")
            sq = w.conv(pool.name, kernel=1, stride=1, depthwise=False, bias=True,
                        what="the SE squeeze conv")
            layers.conv_bias(sq)
            sa, s_alpha = w.act(sq.name, sq.params["weight"].shape[0])
            layers.prelu(s_alpha, sa)
            ex = w.conv(sa.name, kernel=1, stride=1, depthwise=False, bias=True,
                        what="the SE excite conv")
            layers.conv_bias(ex)
            sig = w.take(ex.name, "sigmoid")
            mul = w.take(x, "mul", "the SE scaling",
                         lambda n, gate=sig.name: gate in n.inputs)
            x = mul.name
        add = w.take(x, "add", "the residual addition")
        other = [i for i in add.inputs if i != x]
        other = other[0] if other else x
        if stride == 2 or out_c != (channels[-1] if channels else width):
            sc, sbn = w.conv_bn(t, kernel=1, stride=stride, depthwise=False,
                                what="the 1x1 shortcut conv")
            if w.out_of(sbn) != other:
                w.fail(add, "the shortcut branch as the addition's other input", repr(sbn))
            layers.conv(sc)
            layers.bn(sbn)
            if stride != 2:
                w.fail(sc, "stride 2 in the first unit of a stage", repr(bn1))
            units.append(1)
            channels.append(out_c)
        else:
            if other != t or stride != 1 or not units:
                w.fail(add, "an identity shortcut", repr(bn1))
            units[-1] += 1
        t = add.name
    if len(units) != 4:
        w.fail(bn1, f"4 stages (found {len(units)})", "the last IR unit")
    layers.bn(bn1)
    embedding_size, input_size, _ = _head(w, layers, bn1.name, channels[-1])
    eps = layers.settle_eps(("body", "embedding"), default_eps)
    if eps["embedding"] != eps["body"]:
        index = [i for i, _, r in layers.eps if r == "embedding"][0]
        arrays = layers.items[index][1]
        arrays["running_var"] = (np.asarray(arrays["running_var"], np.float64)
                                 + eps["embedding"] - eps["body"]).astype(np.float32)
    mean, scale = norm or default_input
    depth = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34, (3, 4, 14, 3): 50, (3, 13, 30, 3): 100}
    kwargs = {"embedding_size": int(embedding_size), "bn_eps": float(eps["body"]),
              "input_mean": float(mean), "input_scale": float(scale)}
    units = tuple(units)
    if units in depth and not (use_se and depth[units] not in (50, 100)):
        name = f"{'se_' if use_se else ''}iresnet{depth[units]}"
    else:  # any other depth keeps the nearest registered family name
        name = "se_iresnet50" if use_se else "iresnet50"
        kwargs["units"] = units
    if tuple(channels) != (64, 128, 256, 512):
        kwargs["channels"] = tuple(int(c) for c in channels)
    if width != channels[0]:
        w.fail(graph.by_name.get(conv.name), f"a stem as wide as the first stage "
               f"({channels[0]})", "the input")
    if input_size != 112:
        kwargs["input_size"] = input_size
    return name, kwargs, layers


def _conv_bn_act(w, layers, t, what, **conv_kw):
    """conv + BatchNorm + activation from ``t``, recorded in ``layers``: (conv, activation)."""
    conv, bn = w.conv_bn(t, what=what, **conv_kw)
    layers.conv(conv)
    layers.bn(bn)
    act, alpha = w.act(w.out_of(bn), conv.params["weight"].shape[0])
    layers.prelu(alpha, act)
    return conv, act


def _bottleneck(w, layers, t):
    """expand 1x1 (act), depthwise 3x3 (act), project 1x1 (linear), optional residual."""
    e, ea = _conv_bn_act(w, layers, t, kernel=1, stride=1, depthwise=False,
                         what="a 1x1 expansion conv")
    exp_c = e.params["weight"].shape[0]
    d, da = _conv_bn_act(w, layers, ea.name, kernel=3, depthwise=True,
                         what="a depthwise 3x3 conv")
    p, pb = w.conv_bn(da.name, kernel=1, stride=1, depthwise=False, what="a 1x1 projection")
    layers.conv(p)
    layers.bn(pb)
    x = w.out_of(pb)
    add = w.peek(x, ("add",))
    residual = add is not None and t in add.inputs
    if residual:
        w.used.add(add.name)
        x = add.name
    return x, {"in": e.params["weight"].shape[1], "exp": exp_c,
               "out": p.params["weight"].shape[0], "stride": d.attrs["stride"][0],
               "residual": residual, "node": e}


def match_mobilefacenet(graph, default_eps=1e-3, default_input=(127.5, 1.0 / 128)):
    """Match an insightface fmobilefacenet ('y1'/'y2' with the GDC head) graph.

    Returns
    -------
    (name, kwargs, layers)
    """
    from ..mobilefacenet import _scaled

    w = _Walker(graph, "a MobileFaceNet (insightface fmobilefacenet, GDC head)")
    layers = _Layers()
    t, norm = _normalize_input(w, graph.input)
    layers.input_in_graph = norm is not None
    conv, a = _conv_bn_act(w, layers, t, kernel=3, stride=2, depthwise=False,
                           what="the 3x3/2 stem conv")
    c64 = conv.params["weight"].shape[0]
    t = a.name
    first = None
    dw = w.peek(t, ("conv",))
    if dw is not None and dw.attrs.get("groups", 1) > 1:
        _, da = _conv_bn_act(w, layers, t, kernel=3, stride=1, depthwise=True,
                             what="conv_2_dw")
        t, first = da.name, 1
    found = []
    while True:
        nxt = w.peek(t, ("conv",))
        if nxt is None or tuple(nxt.attrs["kernel"]) != (1, 1):
            break
        after = [n for n in graph.consumers.get(nxt.name, ())]
        if after and after[0].op == "bn":
            after = graph.consumers.get(after[0].name, [])
        after = [n for n in after if n.op in ("prelu", "relu")]
        follow = graph.consumers.get(after[0].name, []) if after else []
        if not any(n.op == "conv" and n.attrs.get("groups", 1) > 1
                   and tuple(n.attrs["kernel"]) == (3, 3) for n in follow):
            break  # conv_6sep: a 1x1 conv not followed by a depthwise 3x3
        t, info = _bottleneck(w, layers, t)
        found.append(info)
    sep, sa = _conv_bn_act(w, layers, t, kernel=1, stride=1, depthwise=False,
                           what="conv_6sep (1x1)")
    head = sep.params["weight"].shape[0]
    g, gb = w.conv_bn(sa.name, kernel="any", stride=1, depthwise=True,
                      what="the global depthwise conv (GDC)")
    if tuple(g.attrs["pad"]) != (0, 0):
        w.fail(g, "a GDC without padding", repr(sa))
    layers.conv(g)
    layers.bn(gb)
    # the groups between the stride-2 bottlenecks: [b0] s2 [b1] s2 [b2] s2 [b3]
    strided = [i for i, b in enumerate(found) if b["stride"] == 2]
    if len(strided) != 3:
        node = found[0]["node"] if found else sep
        w.fail(node, "three stride-2 bottlenecks (dconv_23, dconv_34, dconv_45)",
               "the stem")
    pre = strided[0] if first is None else None
    blocks = [first if first is not None else pre,
              strided[1] - strided[0] - 1, strided[2] - strided[1] - 1,
              len(found) - strided[2] - 1]
    width_mult = c64 / 64.0
    c128 = found[strided[1]]["out"]
    expected = {"c128": _scaled(128, width_mult), "head": 512}
    if min(blocks) < 1 or c128 != expected["c128"] or head != expected["head"]:
        w.fail(sep, f"MobileFaceNet widths (64k / 128k / 512, blocks >= 1; found {c64} / "
               f"{c128} / {head}, blocks {blocks})", "the body")
    exp_wanted = ([c64] * (0 if first else blocks[0]) + [2 * c64] + [2 * c64] * blocks[1]
                  + [4 * c64] + [2 * c128] * blocks[2] + [4 * c128] + [2 * c128] * blocks[3])
    for info, want in zip(found, exp_wanted):
        if info["exp"] != want or info["residual"] != (info["stride"] == 1):
            w.fail(info["node"], f"a bottleneck expanding to {want} channels "
                                 f"({'with' if info['stride'] == 1 else 'without'} residual)",
                   "the previous block")
    embedding_size, _, _ = _head(w, layers, w.out_of(gb), head)
    gdc_kernel = g.attrs["kernel"][0]
    eps = layers.settle_eps(("body", "embedding"), default_eps)
    mean, scale = norm or default_input
    kwargs = {"embedding_size": int(embedding_size), "bn_eps": float(eps["body"]),
              "embedding_eps": float(eps["embedding"] or 2e-5),
              "input_mean": float(mean), "input_scale": float(scale)}
    if width_mult != 1.0:
        kwargs["width_mult"] = width_mult
    if tuple(blocks) != (1, 4, 6, 2):
        kwargs["blocks"] = tuple(int(b) for b in blocks)
    if gdc_kernel != 7:
        kwargs["input_size"] = int(gdc_kernel) * 16
    return "mobilefacenet", kwargs, layers


def match_any(graph, matchers):
    """Try each matcher; the error of the one that got furthest is raised if none fits."""
    errors = []
    for matcher in matchers:
        try:
            return matcher(graph)
        except GraphMismatch as err:
            errors.append(err)
    raise errors[0] if len(errors) == 1 else GraphMismatch(
        " / ".join(str(e) for e in errors))


def _leaves(block):
    from mxnet.gluon import nn

    from ...nn.prelu import PReLU

    out = []

    def visit(b):
        if isinstance(b, (nn.Conv2D, nn.BatchNorm, nn.Dense, PReLU)):
            out.append(b)
            return
        for child in b._children.values():
            visit(child)

    visit(block)
    return out


_KIND = {"Conv2D": "conv", "BatchNorm": "bn", "Dense": "fc", "PReLU": "prelu"}


def build_network(name, kwargs, layers, source, ctx=None):
    """Build the registered network ``name(**kwargs)`` and load ``layers`` into it.

    Every parameter is assigned from the graph (shapes checked, naming the source node).
    """
    import mxnet as mx

    from ..registry import get_constructor

    net = get_constructor(name)(**kwargs)
    leaves = _leaves(net)
    if len(leaves) != len(layers.items):
        raise GraphMismatch(f"{source}: {len(layers.items)} layers matched but {name} has "
                            f"{len(leaves)}")
    ctx = ctx or mx.cpu()
    for block, (kind, arrays, node) in zip(leaves, layers.items):
        if _KIND[type(block).__name__] != kind:
            raise GraphMismatch(f"{source}: node {node!r} is a {kind}, {name} expects a "
                                f"{type(block).__name__} there")
        for pname, param in block._reg_params.items():
            if pname not in arrays:
                raise GraphMismatch(f"{source}: node {node!r} has no {pname}")
            value = np.asarray(arrays[pname], np.float32)
            if value.shape != tuple(param.shape):
                raise GraphMismatch(f"{source}: node {node!r}: {pname} has shape "
                                    f"{value.shape}, {name} expects {tuple(param.shape)}")
            param._load_init(mx.nd.array(value, ctx=mx.cpu()), ctx)
    return net
