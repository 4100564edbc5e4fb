"""Evaluate a face-embedding model on IJB-C or IJB-B (1:1 verification and 1:N identification).

Reads insightface's IJB_release layout, aligns every loose crop from its 5 points, embeds it
and its mirror image (cached in chunks: a killed run resumes where it stopped), then prints
TAR (%) at FAR 1e-6 .. 1e-1 for each test mode, as the arcface_torch README's tables::

    gluonfr-eval-ijb --ijb-root IJB_release --target IJBC --model iresnet100 \\
        --params runs/iresnet100-0000.params --json ijbc.json --plot ijbc_roc.png

    gluonfr-eval-ijb --ijb-root IJB_release --target IJBB --symbol model-symbol.json \\
        --params model-0000.params --output-layer fc1_output --modes all
    gluonfr-eval-ijb --onnx model.onnx --ijb-root IJB_release --target IJBC --ctx cpu

Test modes (``--modes``, several allowed): ``default`` = ``flip=sum,norm=off,faceness=on``
(insightface's published tables), ``all`` (12 combinations), or ``flip=none|sum|concat,
norm=on|off,faceness=on|off``. The table uses insightface's nearest-ROC-point rule; the
strict rule (best TAR with FAR <= target) is printed and saved too. Pair scores are saved
(``--scores``, default beside ``--json``) so ``--from-scores FILE`` gives other FARs and plots
without the network.
"""
import hashlib
import os
import sys

from gluonfr.cli import command_parser, exits_on_bad_input


def _file_sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_id(args):
    """What identifies the network for the embedding cache: its kind, options and files."""
    parts = [f"model={args.model}", f"embedding_size={args.embedding_size}",
             f"input={args.input_name}", f"output={args.output_layer}"]
    for flag in ("params", "symbol", "onnx"):
        path = getattr(args, flag)
        if path:
            parts.append(f"{flag}={_file_sha1(path)}")
    if args.model and not args.params:
        # published or imported weights (gluonfr-import): the stored file is the identity
        from gluonfr.model_zoo import get_model_file

        try:
            parts.append(f"pretrained={_file_sha1(get_model_file(args.model))}")
        except (OSError, ValueError):
            parts.append("pretrained")  # loading the network will say what is missing
    return ";".join(parts)


def parse_args(argv=None):
    """The checked arguments of ``gluonfr-eval-ijb``."""
    from gluonfr.metrics.ijb import DEFAULT_FPIRS
    from gluonfr.metrics.protocol import DEFAULT_FARS

    p = command_parser("gluonfr-eval-ijb", __doc__)
    p.add_argument("--ijb-root", help="IJB_release folder (holding IJBC/ or IJBB/)")
    p.add_argument("--target", default="IJBC", type=str.upper, choices=("IJBC", "IJBB"))
    src = p.add_argument_group("model (a zoo name, an exported symbol or an ONNX file)")
    src.add_argument("--model", help="model-zoo name, e.g. mobilefacenet, iresnet100, or a "
                                     "name given to gluonfr-import (its stored weights)")
    src.add_argument("--params", help="parameter file (zoo model: the backbone's; without it, "
                                      "the published parameters)")
    src.add_argument("--symbol", help="exported X-symbol.json (gluon export or insightface)")
    src.add_argument("--onnx", help=".onnx file (NCHW float32 RGB 0..255 input)")
    src.add_argument("--embedding-size", type=int, help="zoo model: its embedding size")
    src.add_argument("--input-name", default="data", help="symbol: data input (default data)")
    src.add_argument("--output-layer", help="symbol: internal output to use, e.g. fc1_output")
    p.add_argument("--modes", nargs="+", default=["default"],
                   help="test modes: default, all, or flip=..,norm=..,faceness=.. (several)")
    p.add_argument("--fars", default=",".join(f"{f:g}" for f in DEFAULT_FARS),
                   help="comma-separated FARs (default: %(default)s)")
    p.add_argument("--fpirs", default=",".join(f"{f:g}" for f in DEFAULT_FPIRS),
                   help="comma-separated 1:N FPIRs (default: %(default)s)")
    p.add_argument("--no-1n", dest="one_to_n", action="store_false",
                   help="skip 1:N identification even when its csvs are there")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (total)")
    p.add_argument("--ctx", default="cpu", help="devices, e.g. cpu, gpu:0, gpu:0,gpu:1, 0,1")
    p.add_argument("--cache-dir", default="ijb_cache",
                   help="embedding cache root; a sub-folder per target and model "
                        "(default: %(default)s)")
    p.add_argument("--chunk-size", type=int, default=4096,
                   help="images per cached chunk (default: %(default)s)")
    p.add_argument("--json", help="write every mode's numbers (and ROC) to this JSON file")
    p.add_argument("--plot", help="draw the ROC of every mode (log FAR) into this image")
    p.add_argument("--scores", help="save the pair scores here (.npz; default: beside --json)")
    p.add_argument("--from-scores", help="re-score a --scores file: no images, no network")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        args.fars = tuple(float(v) for v in args.fars.split(","))
        args.fpirs = tuple(float(v) for v in args.fpirs.split(","))
    except ValueError:
        p.error("--fars / --fpirs: expected comma-separated numbers such as 1e-4,1e-3")
    if args.from_scores:
        return args
    if not args.ijb_root:
        p.error("--ijb-root is required (or --from-scores)")
    sources = [s for s in (args.model, args.symbol, args.onnx) if s]
    if len(sources) != 1:
        p.error("give exactly one of --model NAME, --symbol FILE or --onnx FILE")
    if args.symbol and not args.params:
        p.error("--symbol needs --params")
    for flag in ("params", "symbol", "onnx"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            p.error(f"--{flag} {path!r} does not exist")
    if args.chunk_size < 1 or args.batch_size < 1:
        p.error("--chunk-size and --batch-size must be positive")
    from gluonfr.metrics.ijb import parse_modes
    from gluonfr.utils.context import parse_ctx

    try:
        args.modes = parse_modes(args.modes)
        args.ctx = parse_ctx(args.ctx)
    except ValueError as e:
        p.error(str(e))
    return args


def _report(args, results, meta_info, labels, t1=None, t2=None):
    from gluonfr.metrics.ijb_eval import (
        format_ijb_table,
        ijb_results_to_json,
        plot_ijb_roc,
        save_scores,
    )
    from gluonfr.metrics.report import write_json

    print(format_ijb_table(results, args.target))
    print()
    print(format_ijb_table({k: dict(v, identification=None) for k, v in results.items()},
                           args.target, rule="strict"))
    if args.json:
        write_json(ijb_results_to_json(results, **meta_info), args.json)
        print(f"wrote {args.json}")
    scores = args.scores or (os.path.splitext(args.json)[0] + ".scores.npz"
                             if args.json and not args.from_scores else None)
    if scores:
        save_scores(scores, results, labels, t1, t2)
        print(f"wrote {scores}")
    if args.plot:
        plot_ijb_roc(results, args.plot, title=f"{args.target} 1:1 ROC")
        print(f"wrote {args.plot}")


@exits_on_bad_input("gluonfr-eval-ijb")
def main(argv=None):
    """Embed (or resume), evaluate, print the tables, write what was asked; exit status."""
    args = parse_args(argv)
    import gluonfr  # noqa: F401  (numpy aliases before mxnet)
    from gluonfr.data.ijb import load_ijb
    from gluonfr.metrics.ijb_eval import (
        embed_ijb,
        evaluate_ijb,
        ijb_forward,
        load_scores,
        rescore,
    )

    if args.from_scores:
        results = rescore(args.from_scores, args.fars)
        _report(args, results, {"target": args.target, "from_scores": args.from_scores},
                load_scores(args.from_scores)[1])
        return 0
    meta = load_ijb(args.ijb_root, args.target, one_to_n=args.one_to_n)
    print(meta)
    ident = model_id(args)
    cache = os.path.join(args.cache_dir, f"{args.target}-"
                         f"{hashlib.sha1(ident.encode()).hexdigest()[:12]}")
    if args.onnx:
        forward = ijb_forward(onnx_path=args.onnx, batch_size=args.batch_size)
    else:
        from gluonfr.model_zoo import load_embedding_net

        net = load_embedding_net(model=args.model, params=args.params, symbol=args.symbol,
                                 ctx=args.ctx, embedding_size=args.embedding_size,
                                 input_name=args.input_name,
                                 output_layer=args.output_layer)
        forward = ijb_forward(net=net, ctx=args.ctx, batch_size=args.batch_size)
    emb, emb_flip = embed_ijb(meta, forward, cache, ident, chunk_size=args.chunk_size,
                              progress=not args.quiet)
    results = evaluate_ijb(meta, emb, emb_flip, args.modes, args.fars, args.fpirs,
                           one_to_n=args.one_to_n)
    info = {"target": args.target, "ijb_root": os.path.abspath(args.ijb_root),
            "model": args.model, "symbol": args.symbol, "onnx": args.onnx,
            "params": args.params, "model_id": ident, "cache_dir": os.path.abspath(cache),
            "num_images": len(meta), "modes_run": [m.name for m in args.modes]}
    _report(args, results, info, meta.labels, meta.t1, meta.t2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
