"""Model cards: what a stored weight is, so nobody has to guess its preprocessing.

A card records the source, training set, head and margins, input colour order and
normalisation, alignment template, embedding size, licence as the source states it, and the
accuracy figures the source publishes (labelled as the source's, never as measured here).
Imported weights get a card from :func:`card_for_import`: the facts of the imported graph
(architecture, input normalisation, embedding size) plus, when the file or folder name is one
of insightface's releases (:data:`KNOWN_RELEASES`), that release's published facts.
"""
import os

__all__ = ["KNOWN_RELEASES", "BUILTIN_CARDS", "card_for_import", "known_release",
           "onnx_input_convention", "ALIGNMENT_ARCFACE"]

ALIGNMENT_ARCFACE = ("insightface arcface 112x112 5-point similarity template "
                     "(gluonfr.data.align.norm_crop)")
_INSIGHTFACE_LICENCE = ("insightface README: the training data and the models trained with "
                        "it are for non-commercial research purposes only")
_MXNET_INPUT = "(x - 127.5) * 0.0078125 on RGB 0..255, inside the graph"
_TORCH_INPUT = "(x - 127.5) / 127.5 on RGB 0..255 (arcface_torch applies it outside the network)"

#: insightface releases users hold, recognised by the tokens of their file or folder name.
#: Figures are the publishers' (insightface README / wiki tables), in percent.
KNOWN_RELEASES = [
    {"release": "model-r100-ii", "match": ("model-r100-ii",), "architecture": "iresnet100",
     "description": "LResNet100E-IR (insightface MXNet model zoo)",
     "training_set": "MS1M-refine-v2 (MS1MV2)",
     "head": "ArcFace (insightface's training log in issue 1093 shows combined margin "
             "(1, 0.3, 0.2))",
     "input": _MXNET_INPUT,
     "published_accuracy": {"LFW": 99.77, "CFP-FP": 98.27, "AgeDB-30": 98.28,
                            "MegaFace": 98.47}},
    {"release": "model-y1-test2", "match": ("model-y1-test2",), "architecture": "mobilefacenet",
     "description": "MobileFaceNet y1, 128-d (insightface MXNet model zoo)",
     "training_set": "MS1M-refine-v1 (MS1MV1)",
     "head": "softmax pre-training, then ArcFace s=64, m=0.5 (insightface issue 214)",
     "input": _MXNET_INPUT,
     "published_accuracy": {"LFW": 99.50, "CFP-FP": 88.94, "AgeDB-30": 95.91}},
    {"release": "model-r50-am-lfw", "match": ("model-r50-am-lfw",), "architecture": "iresnet50",
     "description": "LResNet50E-IR (insightface MXNet model zoo)", "input": _MXNET_INPUT},
    {"release": "model-r34-amf", "match": ("model-r34-amf",), "architecture": "iresnet34",
     "description": "LResNet34E-IR (insightface MXNet model zoo)", "input": _MXNET_INPUT},
    {"release": "w600k_r50", "match": ("w600k_r50",), "architecture": "iresnet50",
     "description": "arcface_torch r50 of insightface's buffalo_l pack",
     "training_set": "WebFace600K", "input": _TORCH_INPUT,
     "published_accuracy": {"IJB-C TAR@FAR=1e-4": 97.25}},
    {"release": "w600k_mbf", "match": ("w600k_mbf",), "architecture": "mbf (arcface_torch)",
     "description": "arcface_torch mbf of insightface's buffalo_s pack (not the y1 "
                    "MobileFaceNet; gluonfr cannot rebuild it yet)",
     "training_set": "WebFace600K", "input": _TORCH_INPUT},
    {"release": "arcface_torch glint360k r100", "match": ("glint360k", "r100"),
     "architecture": "iresnet100", "training_set": "Glint360K",
     "head": "CosFace m=0.4, Partial FC r=0.1", "input": _TORCH_INPUT,
     "published_accuracy": {"IJB-C TAR@FAR=1e-5": 95.88, "IJB-C TAR@FAR=1e-4": 97.32,
                            "AgeDB-30": 98.48, "CFP-FP": 99.29, "LFW": 99.82}},
    {"release": "arcface_torch glint360k r50", "match": ("glint360k", "r50"),
     "architecture": "iresnet50", "training_set": "Glint360K", "head": "CosFace m=0.4",
     "input": _TORCH_INPUT,
     "published_accuracy": {"IJB-C TAR@FAR=1e-4": "96.97-97.16 (several README rows)"}},
] + [
    {"release": f"arcface_torch ms1mv3 {arch}", "match": ("ms1mv3", arch),
     "architecture": f"iresnet{arch[1:]}", "training_set": "MS1MV3", "head": "ArcFace",
     "input": _TORCH_INPUT,
     "published_accuracy": dict(zip(("IJB-C TAR@FAR=1e-5", "IJB-C TAR@FAR=1e-4", "AgeDB-30",
                                     "CFP-FP", "LFW"), figures))}
    for arch, figures in (("r100", (95.31, 96.81, 98.48, 99.06, 99.85)),
                          ("r50", (94.79, 96.46, 98.35, 98.96, 99.83)),
                          ("r34", (94.10, 95.90, 98.10, 98.67, 99.80)),
                          ("r18", (92.07, 94.66, 97.77, 97.73, 99.77)))
]

#: Cards of the built-in store table (``model_store._model_sha1``): name -> card. Empty, as
#: the table is, until weights are published.
BUILTIN_CARDS = {}


def known_release(source):
    """The :data:`KNOWN_RELEASES` entry whose tokens all appear in ``source``'s path."""
    path = os.path.abspath(os.fspath(source)).lower().replace("\\", "/")
    parts = path.split("/")[-3:]
    text = "/".join(parts)
    for release in KNOWN_RELEASES:
        if all(token in text for token in release["match"]):
            return release
    return None


def _fmt_float(value):
    return f"{value:.10g}"


def card_for_import(info, overrides=None, embedding_size=None):
    """The card of an imported network from its ``import_info`` (see ``import_model``).

    Parameters
    ----------
    info : dict
        ``net.import_info``.
    overrides : dict, optional
        Fields the user states (e.g. ``training_set``, ``licence``); they win.
    embedding_size : int, optional
        The network's (when its constructor arguments do not name it).

    Returns
    -------
    dict
    """
    kwargs = info["kwargs"]
    given = info.get("input", {})
    # formats whose networks fix their input scaling (gluon-face's / 255) give it in "input"
    mean = kwargs.get("input_mean", info.get("input", {}).get("mean"))
    scale = kwargs.get("input_scale", info.get("input", {}).get("scale"))
    card = {
        # the last two path parts ('model-y1-test2/model,0'): no private folders in cards
        "source": "/".join(os.fspath(info["source"]).replace("\\", "/").split("/")[-2:]),
        "source_files": [os.path.basename(p) for p in info.get("files", [])],
        "format": info["fmt"],
        "architecture": info["name"],
        "embedding_size": int(kwargs.get("embedding_size", embedding_size or 0)) or None,
        "input": {"color": given.get("color", "RGB"), "range": "0..255",
                  "normalisation": (f"(x - {_fmt_float(mean)}) * {_fmt_float(scale)}, inside "
                                    f"the gluonfr graph" if mean is not None
                                    and scale is not None else
                                    info.get("preprocessing", "inside the gluonfr graph")),
                  "in_source_graph": bool(info.get("input", {}).get(
                      "normalisation_in_source_graph", info["fmt"] == "insightface-mxnet"))},
        "alignment": ALIGNMENT_ARCFACE,
        "training_set": "not stated by the file",
        "head": "not stated by the file",
        "licence": "not stated by the file: check the terms of where it came from",
        "published_accuracy": {},
    }
    if info.get("preprocessing"):
        card["preprocessing"] = info["preprocessing"]
    release = known_release(info["source"])
    if release is not None:
        card["release"] = release["release"]
        card["identified_by"] = "file or folder name (the file's bytes were not compared)"
        for key in ("description", "training_set", "head"):
            if key in release:
                card[key] = release[key]
        card["source_input_convention"] = release["input"]
        card["licence"] = _INSIGHTFACE_LICENCE
        if release.get("published_accuracy"):
            card["published_accuracy"] = dict(release["published_accuracy"],
                                              reported_by="insightface (not measured by "
                                                          "gluonfr)")
    card.update(overrides or {})
    return card


def _onnx_normalises_input(path):
    """Whether an ONNX graph subtracts and scales its image input itself (Sub/Mul/Div ops
    among the nodes that read the input before the first convolution)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    init = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in init]
    frontier, seen = set(inputs[:1]), set()
    for node in graph.node:
        if not frontier.intersection(node.input):
            continue
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            break
        seen.add(node.op_type)
        frontier.update(node.output)
    return bool(seen & {"Sub", "Add"}) and bool(seen & {"Mul", "Div"})


def onnx_input_convention(path, mean=None, std=None, bgr=None):
    """The preprocessing a third-party ONNX face model expects, and where that came from.

    Explicit ``mean``/``std``/``bgr`` win. Otherwise: an insightface release recognised by
    its file name (:data:`KNOWN_RELEASES`) gives its card's convention; else a graph that
    normalises its own input (in-graph Sub and Mul, as gluonfr exports do) takes raw 0..255
    pixels; else arcface_torch's ``(x - 127.5) / 127.5`` is used, and said so. Colour order
    is RGB unless ``bgr``.

    Returns
    -------
    dict
        ``mean``, ``std``, ``bgr`` and ``reason`` (a sentence to print).
    """
    reasons = []
    if mean is None or std is None:
        release = known_release(path)
        if release is not None and release.get("input") == _TORCH_INPUT:
            auto = (127.5, 127.5, f"model card of {release['release']} (by file name): "
                                  f"{_TORCH_INPUT}")
        elif release is not None:
            auto = (0.0, 1.0, f"model card of {release['release']} (by file name): raw "
                              f"pixels, the graph normalises")
        elif _onnx_normalises_input(path):
            auto = (0.0, 1.0, "the graph subtracts and scales its input itself (in-graph "
                              "Sub/Mul): raw 0..255 pixels")
        else:
            auto = (127.5, 127.5, "no in-graph normalisation found: arcface_torch's "
                                  "(x - 127.5) / 127.5 assumed; pass --input-mean/--input-std "
                                  "if the model was trained otherwise")
        mean = auto[0] if mean is None else mean
        std = auto[1] if std is None else std
        reasons.append(auto[2])
    else:
        reasons.append("given")
    if float(std) == 0:
        raise ValueError("input std must not be 0")
    bgr = bool(bgr)
    return {"mean": float(mean), "std": float(std), "bgr": bgr,
            "reason": f"input (x - {mean:g}) / {std:g} on {'BGR' if bgr else 'RGB'}: "
                      + "; ".join(reasons)}
