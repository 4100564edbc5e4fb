"""Load a trained embedding network for inference: a zoo name with a parameter file (or the
published weights), or an exported ``-symbol.json`` with its parameters.

Converting other projects' model files is :func:`gluonfr.model_zoo.import_model`'s job.
"""
import os

import mxnet as mx

from ..utils.context import as_context_list
from .model_zoo import get_model

__all__ = ["load_embedding_net"]

_CPU = mx.cpu()


def load_embedding_net(model=None, params=None, symbol=None, ctx=_CPU, embedding_size=None,
                       input_name="data", output_layer=None, hybridize=True):
    """An embedding network from a model-zoo name and a parameter file, or from an exported
    ``-symbol.json`` and its parameters (gluon ``export`` or an insightface checkpoint).

    Parameters
    ----------
    model : str, optional
        Model-zoo name (:func:`gluonfr.model_zoo.get_model`), with ``params`` the backbone's
        parameters (as the trainer saves them); extra parameters in the file (a classifier)
        are ignored, missing ones are an error. Without ``params`` the published parameters.
    params : str, optional
    symbol : str, optional
        ``X-symbol.json``; then ``params`` is required.
    ctx : mxnet.Context, list of Context or device string (see
        :func:`gluonfr.utils.context.as_context_list`)
    embedding_size : int, optional
        For ``model``: the embedding size it was trained with.
    input_name : str
        For ``symbol``: the data input (``data`` for gluon exports and insightface).
    output_layer : str, optional
        For ``symbol``: an internal output to use as the embedding (e.g. ``fc1_output`` for
        an insightface training checkpoint); default: the symbol's output.
    hybridize : bool
        Hybridize a zoo model (static memory) for faster inference.

    Returns
    -------
    mxnet.gluon.HybridBlock
    """
    ctx_list = as_context_list(ctx)
    if (model is None) == (symbol is None):
        raise ValueError("give a model-zoo name (model=...) or an exported symbol "
                         "(symbol=...), not both")
    if symbol is not None:
        if params is None:
            raise ValueError(f"symbol {symbol!r} needs its parameter file (params=...)")
        for path in (symbol, params):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path!r} does not exist")
        sym = mx.sym.load(symbol)
        if output_layer is not None:
            internals = sym.get_internals()
            if output_layer not in internals.list_outputs():
                raise ValueError(f"{symbol}: no output {output_layer!r}; outputs ending in "
                                 f"'_output' include e.g. {internals.list_outputs()[-5:]}")
            sym = internals[output_layer]
        if input_name not in sym.list_inputs():
            raise ValueError(f"{symbol}: no input named {input_name!r}; inputs are "
                             f"{sym.list_inputs()[:5]}...")
        net = mx.gluon.SymbolBlock(sym, mx.sym.var(input_name, dtype="float32"))
        net.collect_params().load(params, ctx=ctx_list, allow_missing=False,
                                  ignore_extra=True, restore_prefix="")
        return net
    kwargs = {} if embedding_size is None else {"embedding_size": int(embedding_size)}
    if params is None:
        net = get_model(model, pretrained=True, ctx=ctx_list, **kwargs)
    else:
        if not os.path.isfile(params):
            raise FileNotFoundError(f"parameter file {params!r} does not exist")
        net = get_model(model, ctx=ctx_list, **kwargs)
        net.load_parameters(params, ctx=ctx_list, allow_missing=False, ignore_extra=True)
    if hybridize:
        net.hybridize(static_alloc=True)
    return net
