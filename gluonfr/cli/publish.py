"""Make a model-store file from trained parameters, so ``get_model(name, pretrained=True)``
can load them.

    gluonfr-publish runs/mobilefacenet-120000.params --model mobilefacenet \
        --out-dir store/

writes ``store/mobilefacenet-<sha1[:8]>.params`` (backbone only, float32) with an entry in
``store/index.json`` (the local index ``gluonfr-import`` writes too) and prints the line to
add to ``_model_sha1`` in ``gluonfr/model_zoo/model_store.py``. ``--out-dir`` the cache
folder (``$GLUONFR_HOME/models``) makes ``get_model(name, pretrained=True)`` load it on this
machine at once; for others, upload the file to a store and set ``GLUONFR_REPO_URL``.
"""
import sys

from gluonfr.cli import command_parser, exits_on_bad_input
from gluonfr.metrics import write_json
from gluonfr.model_zoo import get_model_list, publish_model


def parse_args(argv=None):
    """The arguments of ``gluonfr-publish``."""
    parser = command_parser("gluonfr-publish", __doc__)
    parser.add_argument("params", help="trained .params file (save_parameters of the backbone "
                                       "or of a training network that holds it)")
    parser.add_argument("--model", required=True, choices=get_model_list(),
                        help="architecture name")
    parser.add_argument("--out-dir", default=".", help="folder for the store file")
    parser.add_argument("--embedding-size", type=int, default=None,
                        help="embedding size the model was trained with (default: the "
                             "architecture's)")
    parser.add_argument("--width-mult", type=float, default=None,
                        help="MobileFaceNet width multiplier the model was trained with")
    parser.add_argument("--tag", default=None,
                        help="tag of the index entry (default: the file's stem)")
    parser.add_argument("--json", default=None,
                        help="also write the registry entry to this JSON file")
    return parser.parse_args(argv)


@exits_on_bad_input("gluonfr-publish")
def main(argv=None):
    """Write the store file, print its registry entry; return the exit status."""
    args = parse_args(argv)
    kwargs = {}
    if args.embedding_size is not None:
        kwargs["embedding_size"] = args.embedding_size
    if args.width_mult is not None:
        kwargs["width_mult"] = args.width_mult
    info = publish_model(args.params, args.model, out_dir=args.out_dir, tag=args.tag, **kwargs)
    if info["dropped"]:
        print(f"left out {len(info['dropped'])} parameters that are not the backbone's: "
              f"{', '.join(info['dropped'][:5])}{' ...' if len(info['dropped']) > 5 else ''}")
    print(f"store file: {info['path']}")
    print(f"sha1:       {info['sha1']}")
    print("add to _model_sha1 in gluonfr/model_zoo/model_store.py:")
    print(f"    {info['entry']}")
    print(f"then upload {info['file_name']} to the model store, or try it locally with "
          f"GLUONFR_REPO_URL={args.out_dir}")
    if args.json:
        write_json({k: info[k] for k in ("name", "sha1", "file_name")}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
