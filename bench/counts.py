"""Parameters and multiply-adds: our networks vs the paper / the notes' figures, and gluon-face.

Counted by ``gluonfr.utils.summary`` on the traced graph at 112x112 (MAdds of convolutions and
dense layers, depthwise per group; parameters without BatchNorm running statistics).
gluon-face's MobileFaceNet is exported from the baseline's virtualenv and counted by the same
counter; its parameters are counted there (gradient-carrying ones, as it trains them).
"""
import os
import tempfile

from bench.common import WORK_DIR, Figure, print_table, run_worker

#: (params, MAdds) published or derived in the notes; MobileFaceNet: the paper (0.99M, 221M);
#: IResNets: insightface fresnet counts (formats-and-protocols.md 5.2)
REFERENCE = {
    "mobilefacenet": (0.99e6, 221e6, "paper"),
    "iresnet18": (24.0e6, 2.61e9, "notes"),
    "iresnet34": (34.1e6, 4.46e9, "notes"),
    "iresnet50": (43.6e6, 6.31e9, "notes"),
    "iresnet100": (65.2e6, 12.09e9, "notes"),
}
TOLERANCE = 0.02


def _ours():
    import gluonfr  # noqa: F401  (numpy aliases before mxnet)
    from gluonfr.model_zoo import get_model_list
    from gluonfr.model_zoo.registry import get_constructor
    from gluonfr.utils import summary

    out = {}
    for name in sorted(get_model_list()):
        info = summary(get_constructor(name)(), (1, 3, 112, 112), print_table=False)
        out[name] = (info["params"], info["macs"])
    return out


def _baseline_mobilefacenet():
    import gluonfr  # noqa: F401
    from gluonfr.utils import summary

    import mxnet as mx

    os.makedirs(WORK_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
        res = run_worker("baseline", "counts", "--out", os.path.join(tmp, "gluonface_mfn"))
        net = mx.gluon.SymbolBlock.imports(res["symbol"], ["data"])
        macs = summary(net, (1, 3, 112, 112), print_table=False)["macs"]
    return res["params"], macs


def run(quick=False):
    ours = _ours()
    base = {"mobilefacenet": _baseline_mobilefacenet()}
    figures = []
    for name, (params, macs) in ours.items():
        ref = REFERENCE.get(name)
        for what, value, idx, unit in (("params", params, 0, ""), ("MAdds", macs, 1, "")):
            b = base.get(name)
            target, met, ratio = "", None, None
            if ref is not None:
                ratio = value / ref[idx]
                met = abs(ratio - 1) <= TOLERANCE
                shown = f"{ref[idx] / 1e6:,.2f}M" if ref[idx] < 1e9 else f"{ref[idx] / 1e9:.2f}G"
                target = f"{ref[2]} {shown} +-{TOLERANCE:.0%}"
            figures.append(Figure("counts", f"{name} {what}", value,
                                  b[idx] if b else None, unit=unit, ratio=ratio,
                                  target=target, met=met,
                                  note="ratio = ours / reference" if ref else ""))
    print_table("parameters and multiply-adds at 112x112 (ratio = ours / reference)", figures)
    return figures
