"""Import a face model trained elsewhere into the local model store, with its model card.

    gluonfr-import model-y1-test2/model,0             # insightface MXNet checkpoint
    gluonfr-import model-r100-ii/model-symbol.json    # the same, by its symbol file
    gluonfr-import glint360k_r100/backbone.pth        # arcface_torch state dict
    gluonfr-import w600k_r50.onnx --name w600k_r50    # arcface_torch ONNX export
    gluonfr-import mobilefacenet-it-86000.params      # gluon-face save_parameters file

converts the weights exactly (the architecture, BatchNorm epsilons and input normalisation
are read from the files), writes ``<name>-<sha1[:8]>.params`` into the cache folder
(``--root``, else ``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``) with an entry and a
model card in its ``index.json``, and prints how to load it:
``get_model(NAME, pretrained=True)``, or ``pretrained='TAG'`` when NAME has several weights.
"""
import json
import sys

from gluonfr.cli import command_parser, exits_on_bad_input


def parse_args(argv=None):
    """The arguments of ``gluonfr-import``."""
    parser = command_parser("gluonfr-import", __doc__)
    parser.add_argument("source", help="'dir/model,EPOCH', '...-symbol.json', '.pt', '.pth', "
                                       "'.onnx' or a gluon-face '.params'")
    parser.add_argument("--fmt", help="import format (default: detected from the files): "
                                      "insightface-mxnet, arcface-torch, gluon-face, ...")
    parser.add_argument("--name", help="name for get_model (default: the architecture, e.g. "
                                       "iresnet50)")
    parser.add_argument("--tag", help="tag of these weights (default: from the file or "
                                      "folder name)")
    parser.add_argument("--root", help="cache folder (default $GLUONFR_HOME/models, else "
                                       "~/.gluonfr/models)")
    parser.add_argument("--card", help="JSON file of model-card fields you know (e.g. "
                                       '{"training_set": "...", "licence": "..."}); they win')
    parser.add_argument("--json", help="also write the index entry to this JSON file")
    return parser.parse_args(argv)


@exits_on_bad_input("gluonfr-import")
def main(argv=None):
    """Import, store and print the entry; return the exit status (2: bad input)."""
    args = parse_args(argv)

    import gluonfr  # noqa: F401  (numpy aliases before mxnet)
    from gluonfr.metrics import write_json
    from gluonfr.model_zoo import import_model, store_network
    from gluonfr.model_zoo.cards import card_for_import

    overrides = None
    if args.card:
        with open(args.card, encoding="utf-8") as f:
            overrides = json.load(f)
        if not isinstance(overrides, dict):
            raise ValueError(f"{args.card}: expected a JSON object of card fields")
    net = import_model(args.source, fmt=args.fmt)
    card = card_for_import(net.import_info, overrides,
                           getattr(net, "embedding_size", None))
    entry = store_network(net, name=args.name, tag=args.tag, card=card, root=args.root)
    info = net.import_info
    print(f"imported {args.source} ({info['fmt']}) as {entry['arch']}"
          f"({', '.join(f'{k}={v!r}' for k, v in info['kwargs'].items())})")
    print(f"input: 0..255 RGB, normalised inside the graph as {card['input']['normalisation']}")
    if card.get("release"):
        print(f"recognised as {card['release']} by its name: training set "
              f"{card['training_set']}; licence: {card['licence']}")
    print(f"stored:  {entry['path']}")
    print(f"sha1:    {entry['sha1']}")
    print(f"load it: get_model({entry['name']!r}, pretrained=True)   "
          f"or pretrained={entry['tag']!r}")
    if args.json:
        write_json(entry, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
