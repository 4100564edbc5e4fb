"""Evaluate a face-embedding model on the insightface verification targets.

Prints the gluon-face model-zoo "Details" table (accuracy mean+-std over 10 folds, without
and with flip), and optionally writes every number to JSON and an ROC figure::

    gluonfr-eval --model mobilefacenet --params runs/mobilefacenet-86000.params \\
        --data-dir ~/.mxnet/datasets/face --targets lfw,cfp_fp,agedb_30 \\
        --json results.json --plot roc.png

    gluonfr-eval --symbol model-symbol.json --params model-0000.params \\
        --output-layer fc1_output --data-dir faces_emore     # an insightface checkpoint

    gluonfr-eval --model mobilefacenet --params mfn.params --data-dir faces_emore \\
        --targets lfw --gallery errors/       # the hardest false positives / negatives

    gluonfr-eval --onnx w600k_r50.onnx --data-dir faces_emore  # any ONNX model, with its
                                                             # preprocessing (printed)

Targets missing from ``--data-dir`` are reported and skipped.
"""
import os
import sys

from gluonfr.cli import command_parser
from gluonfr.metrics import (
    KNOWN_TARGETS,
    evaluate_targets,
    format_table,
    load_targets,
    plot_roc,
    results_to_json,
    write_json,
)
from gluonfr.model_zoo import load_embedding_net
from gluonfr.utils.context import parse_ctx


def parse_args(argv=None):
    """The checked arguments of ``gluonfr-eval``."""
    p = command_parser("gluonfr-eval", __doc__)
    src = p.add_argument_group("model (a zoo name, an exported symbol or an ONNX file)")
    src.add_argument("--model", help="model-zoo name, e.g. mobilefacenet, iresnet50")
    src.add_argument("--symbol", help="exported X-symbol.json (gluon export or insightface)")
    src.add_argument("--params", help="parameter file (zoo model: the backbone's; without it, "
                                      "the published parameters)")
    src.add_argument("--embedding-size", type=int, help="zoo model: its embedding size")
    src.add_argument("--input-name", default="data", help="symbol: data input (default data)")
    src.add_argument("--output-layer", help="symbol: internal output to use, e.g. fc1_output")
    src.add_argument("--onnx", help="run this .onnx file with ONNX Runtime")
    src.add_argument("--input-mean", type=float, help="ONNX: the model's input is (x - MEAN) "
                     "/ STD (default: from its model card or graph, printed)")
    src.add_argument("--input-std", type=float, help="ONNX: see --input-mean")
    src.add_argument("--bgr", action="store_true", help="ONNX: feed BGR instead of RGB")
    p.add_argument("--data-dir", required=True, help="folder with <target>.bin files")
    p.add_argument("--targets", default=",".join(KNOWN_TARGETS),
                   help="comma-separated targets (default: %(default)s)")
    p.add_argument("--flip", dest="flip", action="store_true", default=True,
                   help="also report flip-fused embeddings (default)")
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="only the original images")
    p.add_argument("--flip-mode", choices=("sum", "concat"), default="sum",
                   help="flip fusion: sum (insightface) or concat (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (total)")
    p.add_argument("--ctx", default="cpu", help="devices, e.g. cpu, gpu:0, gpu:0,gpu:1, 0,1")
    p.add_argument("--nfolds", type=int, default=10, help="folds (default: %(default)s)")
    p.add_argument("--far", type=float, default=1e-3, help="FAR of VAL@FAR")
    p.add_argument("--image-size", default="112,112", help="H,W the images are resized to")
    p.add_argument("--no-hybridize", dest="hybridize", action="store_false",
                   help="run a zoo model imperatively")
    p.add_argument("--int8", action="store_true",
                   help="run the network in int8 (oneDNN, CPU); needs --calib")
    p.add_argument("--calib", help="--int8: a gluonfr.utils.save_quantized prefix, or aligned "
                   "crops to calibrate on (.bin, .rec folder, image folder)")
    p.add_argument("--calib-mode", choices=("naive", "entropy"), default="naive",
                   help="--int8 calibration (default: %(default)s)")
    p.add_argument("--save-int8", metavar="PREFIX",
                   help="--int8: save the calibrated network here (reuse it as --calib)")
    p.add_argument("--compare-float32", action="store_true",
                   help="--int8: also run float32 and report, per target, both accuracies "
                        "and the int8-to-float32 embedding cosine")
    p.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="run the plain float32 graph, not the oneDNN-fused one (CPU)")
    p.add_argument("--json", help="write all results to this JSON file")
    p.add_argument("--plot", help="draw the ROC curves into this image (.png/.pdf/.svg)")
    p.add_argument("--gallery", metavar="DIR",
                   help="save per target the hardest false positives and false negatives "
                        "at the threshold as image grids (+ a JSON list) in DIR")
    p.add_argument("--gallery-size", type=int, default=16,
                   help="pairs per gallery (default: %(default)s)")
    p.add_argument("--gallery-threshold", type=float,
                   help="squared-L2 threshold of the galleries (default: the target's mean "
                        "best threshold over the folds)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if sum(v is not None for v in (args.model, args.symbol, args.onnx)) != 1:
        p.error("give --model NAME, --symbol FILE or --onnx FILE (one of them)")
    if args.onnx is None and (args.input_mean is not None or args.input_std is not None
                              or args.bgr):
        p.error("--input-mean/--input-std/--bgr apply to --onnx models only (gluonfr "
                "networks normalise inside their graph)")
    if args.int8 and (args.onnx or not args.calib):
        p.error("--int8 needs --calib and a --model or --symbol network (not --onnx)")
    if args.compare_float32 and not args.int8:
        p.error("--compare-float32 compares the --int8 network with float32: add --int8")
    if args.symbol and not args.params:
        p.error("--symbol needs --params")
    try:
        args.image_size = tuple(int(v) for v in args.image_size.split(","))
        if len(args.image_size) != 2 or min(args.image_size) < 1:
            raise ValueError
    except ValueError:
        p.error(f"--image-size {args.image_size!r}: expected H,W such as 112,112")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets:
        p.error("--targets is empty")
    try:
        args.ctx = parse_ctx(args.ctx)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None):
    """Evaluate, print the table, write the JSON / plot asked for; return the exit status."""
    args = parse_args(argv)
    try:
        targets, missing = load_targets(args.data_dir, args.targets, args.image_size)
    except FileNotFoundError as e:
        print(f"gluonfr-eval: error: {e}", file=sys.stderr)
        return 2
    for path in missing:
        print(f"skipped: {path} not found", file=sys.stderr)
    if not targets:
        print(f"gluonfr-eval: error: none of {', '.join(args.targets)} found in {args.data_dir}",
              file=sys.stderr)
        return 2
    net, forward = None, None
    if args.onnx:
        try:
            forward = _onnx_forward(args)
        except (OSError, ValueError) as e:
            print(f"gluonfr-eval: error: {e}", file=sys.stderr)
            return 2
    else:
        net = load_embedding_net(model=args.model, params=args.params, symbol=args.symbol,
                                 ctx=args.ctx, embedding_size=args.embedding_size,
                                 input_name=args.input_name, output_layer=args.output_layer,
                                 hybridize=args.hybridize)
        if args.int8:
            from gluonfr.utils.quantize import as_int8, compare_int8

            float_net = net
            net = as_int8(net, args.calib, calib_mode=args.calib_mode, path=args.save_int8,
                          image_size=args.image_size)
            if args.compare_float32:
                int8_embeddings = {}
                for name, c in compare_int8(float_net, net, targets, batch_size=args.batch_size,
                                            nfolds=args.nfolds, progress=not args.quiet,
                                            keep_embeddings=True).items():
                    int8_embeddings[id(targets[name][0])] = c.pop("int8_embeddings")
                    print(f"[{name}] int8 vs float32: accuracy {c['int8']:.4f} vs "
                          f"{c['float32']:.4f} ({c['difference']:+.2f} points), embedding "
                          f"cosine mean {c['cosine_mean']:.4f} min {c['cosine_min']:.4f}: "
                          f"{'within' if c['met'] else 'OUTSIDE'} the int8 bar; int8 "
                          f"changes the pairs' distances by {c['distance_sd']:.4f} (sd), "
                          f"random moves that change them as much move the accuracy by "
                          f"{c['noise_mean']:+.2f} +- {c['noise_sd']:.2f} points")

                def forward(images, flip):  # the int8 embeddings just computed, not again
                    emb, emb_flip = int8_embeddings[id(images)]
                    return emb, emb_flip if flip else None
    results = evaluate_targets(net, targets, ctx=args.ctx, batch_size=args.batch_size,
                               flip=args.flip, mode=args.flip_mode, nfolds=args.nfolds,
                               far_target=args.far, progress=not args.quiet,
                               return_distances=bool(args.gallery), forward=forward,
                               fuse=args.fuse and args.hybridize)
    print(format_table(results))
    for name, res in results.items():
        print(f"[{name}] VAL@FAR={args.far:g}: {res['val']:.5f}+-{res['val_std']:.5f} "
              f"(FAR {res['far']:.5f})  AUC {res['auc']:.5f}  EER {res['eer']:.5f}  "
              f"XNorm {res['xnorm']:.3f}")
    if args.json:
        meta = {"model": args.model or os.path.abspath(args.symbol or args.onnx),
                "params": os.path.abspath(args.params) if args.params else None,
                "flip_mode": args.flip_mode if args.flip else None, "nfolds": args.nfolds,
                "far_target": args.far, "missing": missing}
        write_json(results_to_json(results, **meta), args.json)
        print(f"wrote {args.json}")
    if args.gallery:
        from gluonfr.metrics.gallery import error_gallery

        for name, res in results.items():
            thr = res["threshold"] if args.gallery_threshold is None else args.gallery_threshold
            images, issame = targets[name]
            g = error_gallery(images, issame, res["distances"], thr, args.gallery, name,
                              num=args.gallery_size)
            print(f"[{name}] at threshold {thr:.3f}: {g['num_false_positives']} false "
                  f"positives, {g['num_false_negatives']} false negatives; wrote "
                  f"{', '.join(g['files'])}")
    if args.plot:
        plot_roc(results, args.plot,
                 title="ROC " + (args.model or os.path.basename(args.symbol or args.onnx)),
                 far_target=args.far)
        print(f"wrote {args.plot}")
    return 0


def _onnx_forward(args):
    """``forward(images, flip)`` over an ONNX Runtime session with the model's preprocessing."""
    from gluonfr.metrics import forward_onnx
    from gluonfr.model_zoo.cards import onnx_input_convention

    import onnxruntime as ort

    if not os.path.isfile(args.onnx):
        raise FileNotFoundError(f"--onnx {args.onnx}: no such file")
    conv = onnx_input_convention(args.onnx, args.input_mean, args.input_std, args.bgr)
    print(f"{os.path.basename(args.onnx)}: {conv['reason']}")
    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    return lambda images, flip: forward_onnx(session, images, batch_size=args.batch_size,
                                             flip=flip, mean=conv["mean"], std=conv["std"],
                                             bgr=conv["bgr"])


if __name__ == "__main__":
    sys.exit(main())
