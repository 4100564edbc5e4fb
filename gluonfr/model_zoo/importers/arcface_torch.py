"""insightface arcface_torch checkpoints: ``.pt``/``.pth`` state dicts and ``.onnx`` exports.

``.pt`` files are read **without torch**: the file is a zip holding ``<name>/data.pkl`` (a
pickle that rebuilds tensors through ``torch._utils._rebuild_tensor_v2`` from storages kept
as raw little-endian bytes in ``<name>/data/<key>``). :class:`TorchStateUnpickler` maps those
few globals (and ``collections.OrderedDict``) to numpy and refuses every other one before it
is called, so a ``.pt`` cannot run code. The state dict's names follow
``backbones/iresnet.py``; the graph they describe is matched like every imported graph.

``.onnx`` files are read with ``onnx``: exporters rename the initializers and fold each
BatchNorm that follows a conv into the conv, so parameters are found by the graph's
structure (:mod:`.graph`), not by name.

arcface_torch feeds its networks ``(x / 255 - 0.5) / 0.5`` = ``(x - 127.5) / 127.5``, applied
outside the network (ONNX exports too); the imported network does it inside, so it takes
0..255 RGB like every gluonfr network. An ONNX graph that already subtracts and scales its
input (in-graph Sub/Mul) keeps its own constants and takes raw pixels.
"""
import collections
import io
import os
import pickle
import re
import zipfile

import numpy as np

from . import ImportFormatError, register_format
from .graph import Graph, Node, build_network, match_any, match_iresnet, match_mobilefacenet

__all__ = ["TorchStateUnpickler", "load_torch_state_dict", "read_onnx_graph",
           "state_dict_graph", "import_arcface_torch", "ARCFACE_TORCH_INPUT"]

#: arcface_torch's input convention: (x - 127.5) / 127.5 on RGB.
ARCFACE_TORCH_INPUT = (127.5, 1.0 / 127.5)
EPS = 1e-5  # every arcface_torch BatchNorm
HINT_ONNX = ("scripts/eval.py --onnx MODEL.onnx runs any ONNX model as it is (with "
             "--input-mean/--input-std/--bgr for its preprocessing).")
HINT_PT = ("Export it to ONNX with arcface_torch's torch2onnx.py and run it with "
           "scripts/eval.py --onnx.")

_STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                   "BFloat16Storage": "bfloat16", "LongStorage": "<i8", "IntStorage": "<i4",
                   "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
                   "BoolStorage": "?"}


class _StorageType:
    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *_):
    # (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if not size:
        return np.array(storage[offset])
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size),
                                           tuple(s * itemsize for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_):
    return data


class TorchStateUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch ``data.pkl`` into numpy arrays and plain containers only.

    Allowed globals: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
    ``_rebuild_parameter`` (rebuilt as numpy), the ``torch.*Storage`` classes (dtype tags).
    Anything else raises :class:`pickle.UnpicklingError` before it can be called.

    Parameters
    ----------
    file : file object
        The pickle stream.
    read_storage : callable
        ``read_storage(key) -> bytes`` of ``<name>/data/<key>``.
    source : str
        File name for error messages.
    """

    def __init__(self, file, read_storage, source="<pt>"):
        super().__init__(file)
        self._read_storage, self.source = read_storage, source
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(
            f"{self.source}: refusing to load global '{module}.{name}'; a model file may hold "
            f"only tensors and (ordered) dicts of them (a pickle that names other callables "
            f"could run code)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"{self.source}: unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self._storages:
            raw = self._read_storage(key)
            if storage_type.dtype == "bfloat16":  # the high half of a float32
                bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
                array = bits.view(np.float32)
            else:
                array = np.frombuffer(raw, storage_type.dtype)
            self._storages[key] = array
        return self._storages[key]


def load_torch_state_dict(path):
    """The tensors of a PyTorch zip checkpoint as ``{name: numpy array}``, without torch.

    A training checkpoint's backbone (``state_dict_backbone``, ``state_dict``, ``model``)
    is picked, and DataParallel's ``module.`` prefixes are removed.

    Raises
    ------
    ImportFormatError
        Not a zip checkpoint (e.g. the legacy non-zip format) or it holds other objects.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise ImportFormatError(f"{path}: not a PyTorch zip checkpoint ({err}); re-save it "
                                f"with torch>=1.6 torch.save") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ImportFormatError(f"{path}: expected one data.pkl in the zip, found "
                                    f"{len(pickles)}")
        prefix = pickles[0][:-len("data.pkl")]
        order = prefix + "byteorder"
        if order in archive.namelist() and archive.read(order).strip() != b"little":
            raise ImportFormatError(f"{path}: big-endian checkpoints are not supported")

        def read_storage(key):
            try:
                return archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"{path}: storage {key} missing") from None

        try:
            obj = TorchStateUnpickler(io.BytesIO(archive.read(pickles[0])), read_storage,
                                      source=os.fspath(path)).load()
        except pickle.UnpicklingError as err:
            raise ImportFormatError(str(err)) from None
        except Exception as err:  # noqa: BLE001  (truncated or corrupt pickle)
            raise ImportFormatError(f"{path}: unreadable data.pkl ({type(err).__name__}: "
                                    f"{err})") from None
    if isinstance(obj, dict):
        for key in ("state_dict_backbone", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ImportFormatError(f"{path}: expected a state dict (names -> tensors)")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def _conv(name, data, weight, stride):
    k = weight.shape[2:]
    return Node(name, "conv", [data], {"kernel": tuple(k), "stride": (stride, stride),
                                       "pad": (k[0] // 2, k[1] // 2), "groups": 1},
                {"weight": weight})


def state_dict_graph(state, source):
    """The graph an arcface_torch ``iresnet`` state dict describes (strides and eps are
    arcface_torch's: stride 2 in each layer's first block, BatchNorm eps 1e-5)."""
    used = set()

    def get(key):
        if key not in state:
            sample = ", ".join(sorted(state)[:4])
            raise ImportFormatError(f"{source}: no tensor {key!r}: not an arcface_torch "
                                    f"iresnet state dict (it has e.g. {sample}). {HINT_PT}")
        used.add(key)
        return np.asarray(state[key], np.float32)

    def bn(name, data):
        used.add(name + ".num_batches_tracked")
        return Node(name, "bn", [data], {"eps": EPS},
                    {"gamma": get(name + ".weight"), "beta": get(name + ".bias"),
                     "mean": get(name + ".running_mean"), "var": get(name + ".running_var")})

    g = Graph(source, "data", HINT_PT)
    t = g.add(_conv("conv1", "data", get("conv1.weight"), 1)).name
    t = g.add(bn("bn1", t)).name
    t = g.add(Node("prelu", "prelu", [t], {}, {"alpha": get("prelu.weight")})).name
    for layer in range(1, 5):
        blocks = sorted({int(m.group(1)) for k in state
                         for m in [re.match(rf"layer{layer}\.(\d+)\.", k)] if m})
        if not blocks:
            get(f"layer{layer}.0.bn1.weight")
        for i in blocks:
            p = f"layer{layer}.{i}."
            x = g.add(bn(p + "bn1", t)).name
            x = g.add(_conv(p + "conv1", x, get(p + "conv1.weight"), 1)).name
            x = g.add(bn(p + "bn2", x)).name
            x = g.add(Node(p + "prelu", "prelu", [x], {}, {"alpha": get(p + "prelu.weight")}))
            x = g.add(_conv(p + "conv2", x.name, get(p + "conv2.weight"), 2 if i == 0 else 1))
            x = g.add(bn(p + "bn3", x.name)).name
            shortcut = t
            if p + "downsample.0.weight" in state:
                s = g.add(_conv(p + "downsample.0", t, get(p + "downsample.0.weight"), 2))
                shortcut = g.add(bn(p + "downsample.1", s.name)).name
            t = g.add(Node(p + "add", "add", [x, shortcut])).name
    t = g.add(bn("bn2", t)).name
    t = g.add(Node("fc", "fc", [t], {}, {"weight": get("fc.weight"),
                                         "bias": get("fc.bias")})).name
    g.add(bn("features", t))
    left = sorted(set(state) - used)
    if left:
        raise ImportFormatError(f"{source}: tensors {left[:4]} are no part of an arcface_torch "
                                f"iresnet ({len(left)} left over). {HINT_PT}")
    return g.finish()


_ONNX_PASS = {"Identity": "identity", "Dropout": "dropout", "Flatten": "flatten"}


def read_onnx_graph(path):
    """An ONNX model as a :class:`Graph` (nodes named by their ONNX node names)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(path)
    except Exception as err:  # noqa: BLE001  (onnx raises DecodeError and others)
        raise ImportFormatError(f"{path}: not an ONNX model ({err})") from None
    const = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    const[node.output[0]] = numpy_helper.to_array(a.t)
    inputs = [i.name for i in model.graph.input if i.name not in const]
    if len(inputs) != 1:
        raise ImportFormatError(f"{path}: expected one image input, found {inputs}")
    graph = Graph(path, inputs[0], HINT_ONNX)
    producer = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type == "Constant":
            continue
        name = node.name or f"{node.op_type}_{index}"
        for out in node.output:
            producer[out] = name
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        data = [producer.get(t, t) for t in node.input if t not in const]
        consts = [const[t] for t in node.input if t in const]
        op, a, p = node.op_type, {}, {}
        if op == "Conv" and len(consts) >= 1:
            w = consts[0]
            pads = list(attrs.get("pads", [0] * 4))
            ok = (pads[:2] == pads[2:] and list(attrs.get("dilations", [1, 1])) == [1, 1]
                  and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
            op = "conv" if ok else op
            a = {"kernel": tuple(w.shape[2:]), "stride": tuple(attrs.get("strides", (1, 1))),
                 "pad": tuple(pads[:2]), "groups": int(attrs.get("group", 1))}
            p = {"weight": w}
            if len(consts) > 1:
                p["bias"] = consts[1]
        elif op == "BatchNormalization" and len(consts) == 4:
            # ONNX stores epsilon as float32: 1e-5 arrives as 9.99999975e-06
            op, a = "bn", {"eps": float(f"{attrs.get('epsilon', 1e-5):.6g}")}
            p = dict(zip(("gamma", "beta", "mean", "var"), consts))
        elif op == "PRelu" and consts:
            op, p = "prelu", {"alpha": consts[0].reshape(-1)}
        elif op in ("Relu", "Sigmoid"):
            op = op.lower()
        elif op == "Add" and consts and consts[0].size == 1:
            op, a = "sub_scalar", {"value": -float(consts[0].reshape(-1)[0])}
        elif op == "Sub" and consts and consts[0].size == 1 and node.input[1] in const:
            op, a = "sub_scalar", {"value": float(consts[0].reshape(-1)[0])}
        elif op == "Mul" and consts and consts[0].size == 1:
            op, a = "mul_scalar", {"value": float(consts[0].reshape(-1)[0])}
        elif op == "Div" and consts and consts[0].size == 1 and node.input[1] in const:
            op, a = "mul_scalar", {"value": 1.0 / float(consts[0].reshape(-1)[0])}
        elif op == "Add" and not consts:
            op = "add"
        elif op == "Mul" and not consts:
            op = "mul"
        elif op == "GlobalAveragePool":
            op = "global_avg_pool"
        elif op == "Gemm" and len(consts) >= 1 and attrs.get("alpha", 1.0) == 1.0 \
                and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0):
            w = consts[0] if attrs.get("transB", 0) else consts[0].T
            op, p = "fc", {"weight": w}
            if len(consts) > 1:
                p["bias"] = consts[1]
        elif op == "Reshape" and len(data) == 1:
            op = "flatten"
        elif op in _ONNX_PASS:
            op = _ONNX_PASS[op]
        graph.add(Node(name, op, data[:1] if op not in ("add", "mul") else data, a, p,
                       source_op=node.op_type))
    graph.input = inputs[0]
    return graph.finish()


def _detect(source):
    lower = source.lower()
    if lower.endswith(".onnx"):
        return os.path.isfile(source)
    if lower.endswith((".pt", ".pth")):
        return zipfile.is_zipfile(source) if os.path.isfile(source) else False
    return False


def _import(source, ctx):
    if not os.path.isfile(source):
        raise ImportFormatError(f"{source}: does not exist")
    if source.lower().endswith(".onnx"):
        graph = read_onnx_graph(source)
    else:
        graph = state_dict_graph(load_torch_state_dict(source), source)

    def iresnet(g):
        return match_iresnet(g, default_eps=EPS, default_input=ARCFACE_TORCH_INPUT)

    def mobilefacenet(g):
        return match_mobilefacenet(g, default_eps=EPS, default_input=ARCFACE_TORCH_INPUT)

    name, kwargs, layers = match_any(graph, [iresnet, mobilefacenet])
    net = build_network(name, kwargs, layers, source, ctx)
    net.import_info = {"name": name, "kwargs": kwargs, "fmt": "arcface-torch",
                       "source": source, "files": [source],
                       "input": {"color": "RGB", "mean": kwargs["input_mean"],
                                 "scale": kwargs["input_scale"],
                                 "normalisation_in_source_graph": layers.input_in_graph}}
    return net


import_arcface_torch = register_format("arcface-torch", _detect)(_import)
