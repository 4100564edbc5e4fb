"""The training head: classifier + loss in one block, ``(embedding, label) -> (loss, hit)``.

``hit`` is 1 where the classifier's top class (highest cosine, no margin) is the label: the
training accuracy, computed inside the graph so the loop never has to bring the (N, C) logits
back to the host.
"""
import inspect

import mxnet as mx
from mxnet.gluon import Block, HybridBlock, nn

from ..loss import (
    NormFaceLoss,
    StatefulHeadLoss,
    get_loss,
    get_loss_class,
    get_loss_list,
    loss_kind,
    scale_and_margin_names,
)
from ..nn import NormDense, PartialFC, check_partial_fc_loss
from ..nn.partial_fc import shard_files, worker_file

__all__ = ["TrainHead", "PartialFCHead", "build_heads", "build_partial_fc_heads",
           "loss_kwargs"]


class TrainHead(HybridBlock):
    """Classifier and loss of one training phase.

    Parameters
    ----------
    classifier : Block or None
        Maps embeddings to logits (``NormDense`` for cosine losses, ``Dense`` for softmax);
        ``None`` when the loss owns its classifier (L2-softmax).
    loss : Block
        ``loss(logits, label) -> (N,)``, or for L2-softmax ``loss(embedding, label) ->
        (loss, logits)``.
    half : bool
        Logits are float16 (AMP): the arg-max runs in float32 so class ids above 2048 stay
        exact.
    aux : Block or None
        An auxiliary term ``aux(embedding, label) -> (N,)`` added to the loss (centre, ring,
        git, triplet).
    """

    def __init__(self, classifier, loss, half=False, aux=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.loss = loss
        self.aux = aux
        self._half = bool(half)

    def forward(self, embedding, label):
        """``(loss, hit)``; a stateful head's new state is stored after the call."""
        stateful = isinstance(self.loss, StatefulHeadLoss)
        if not (stateful and self._active and isinstance(embedding, mx.nd.NDArray)):
            return super().forward(embedding, label)
        # hybridized: the graph takes the update flag and returns the state after (loss, hit)
        out = super().forward(embedding, label, self.loss.update_flag(embedding.context))
        self.loss.write_state(out[2:], embedding.context)
        return out[0], out[1]

    def hybrid_forward(self, F, embedding, label, update=None):
        states = []
        if self.classifier is None:
            loss, logits = self.loss(embedding, label)
        else:
            logits = self.classifier(embedding)
            # heads declare the inputs they need beyond (cos, label), e.g. ("norms",)
            extra = []
            for need in getattr(self.loss, "needs", ()):
                if need != "norms":
                    raise ValueError(f"{type(self.loss).__name__} needs {need!r}: the "
                                     "training head can only pass 'norms'")
                extra.append(F.norm(embedding, axis=1))
            if update is not None:  # symbolic: the state comes back as the last outputs
                out = self.loss(logits, label, *extra, update)
                n = self.loss.num_states
                loss, states = out[0], list(out[-n:])
            else:
                loss = self.loss(logits, label, *extra)
                if isinstance(loss, (tuple, list)):
                    loss = loss[0]
        if self.aux is not None:
            loss = loss + self.aux(embedding, label)
        # float32 for the arg-max whatever made the logits float16 (parameters or AMP): class
        # ids above 2048 are not exact in float16
        logits = F.amp_cast(logits, dtype="float32")
        hit = F.argmax(F.BlockGrad(logits), axis=1) == F.reshape(label, shape=(-1,))
        return (loss, hit, *states) if states else (loss, hit)


def loss_kwargs(cfg, num_classes, embedding_size):
    """Constructor arguments of ``cfg.loss`` from the config (what its signature accepts).

    ``margin_s`` goes to the loss's scale argument and ``margin_m`` to its margin argument
    (``s`` and ``m`` unless the class names others in ``config_scale`` / ``config_margin``:
    L2-softmax's scale is ``alpha``, LGM's margin is ``alpha``), the combined margins to
    ``m1, m2, m3``, the class count and embedding size to ``classes`` / ``in_units``;
    ``cfg.loss_kwargs`` (``--loss-kwargs``) is applied last.
    """
    params = _accepted(get_loss_class(cfg.loss))
    kw = {}
    scale, margin = scale_and_margin_names(cfg.loss)
    if cfg.margin_s is not None and scale in params:
        kw[scale] = cfg.margin_s
    if cfg.margin_m is not None and margin in params:
        kw[margin] = cfg.margin_m
    if cfg.loss == "combined":
        kw.update(m1=cfg.margin_m1, m2=cfg.margin_m2, m3=cfg.margin_m3)
    if "classes" in params:
        kw["classes"] = num_classes
    if "in_units" in params:
        kw["in_units"] = embedding_size
    kw.update(cfg.loss_kwargs or {})
    return kw


def _accepted(factory):
    """Names of the keyword arguments a loss constructor takes (through its base classes)."""
    names = set()
    for klass in getattr(factory, "__mro__", (factory,)):
        init = getattr(klass, "__init__", klass) if isinstance(klass, type) else klass
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        names.update(p.name for p in sig.parameters.values()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break  # this constructor passes nothing further up
    names.discard("self")
    return names


def build_heads(cfg, num_classes, embedding_size):
    """The heads of a run: ``(main, warmup)``; ``warmup`` is ``None`` without loss warm-up.

    The loss is ``gluonfr.loss.get_loss(cfg.loss, **loss_kwargs(...))``; its registry kind
    decides the classifier: a :class:`NormDense` for cosine heads (with the loss's
    ``centers_per_class`` sub-centres per class), none for heads that own one (L2-softmax),
    a dense layer for plain softmax. The NormFace warm-up head shares the main head's class
    centres, so the margin loss continues from the centres the warm-up learned.

    Parameters
    ----------
    cfg : TrainConfig
    num_classes, embedding_size : int
    """
    half = cfg.dtype == "float16"
    kind = loss_kind(cfg.loss)
    if kind not in ("cosine", "embedding", "logits"):
        raise ValueError(f"--loss {cfg.loss} is not a classification head (it is a {kind} "
                         "loss); classification heads: "
                         + ", ".join(get_loss_list(("cosine", "embedding", "logits"))))
    kw = loss_kwargs(cfg, num_classes, embedding_size)
    if kind != "logits":
        kw["check_label"] = False  # labels are checked once per batch on the host
    if kind == "embedding":
        kw["return_logits"] = True
    try:
        loss = get_loss(cfg.loss, **kw)
    except TypeError as err:
        raise ValueError(f"--loss {cfg.loss}: {err}") from None
    classifier = None
    if kind == "cosine":
        classifier = NormDense(num_classes, embedding_size,
                               centers_per_class=getattr(loss, "centers_per_class", 1),
                               prefix="fc7_")
    elif kind == "logits":  # plain softmax: the first stage of the two-stage MobileFaceNet recipe
        classifier = nn.Dense(num_classes, in_units=embedding_size, prefix="fc7_")
    aux = None
    if cfg.aux_loss:
        params = _accepted(get_loss_class(cfg.aux_loss))
        akw = {k: v for k, v in (("classes", num_classes), ("in_units", embedding_size),
                                 ("check_label", False)) if k in params}
        akw.update(cfg.aux_kwargs or {})
        try:
            aux = get_loss(cfg.aux_loss, **akw)
        except TypeError as err:
            raise ValueError(f"--aux-loss {cfg.aux_loss}: {err}") from None
    main = TrainHead(classifier, loss, half=half, aux=aux, prefix="head_")
    warmup = None
    if cfg.loss_warmup_iters > 0:
        if not isinstance(classifier, NormDense):
            raise ValueError(f"--loss-warmup-iters needs a cosine head (arcface, cosface, "
                             f"combined, ...); --loss {cfg.loss} has none")
        warmup = TrainHead(classifier, NormFaceLoss(s=cfg.margin_s or 64.0, check_label=False),
                           half=half, aux=aux, prefix="head_")
    return main, warmup


class PartialFCHead(Block):
    """The head of one training phase when the class centres are a :class:`PartialFC`.

    Holds the (shared) ``pfc`` and the phase's margin ``loss``; it has no Gluon parameters
    (the centres and their momentum live in ``pfc`` and are updated by it, row-wise), so the
    backbone's ``Trainer`` and kvstore never see the classifier. Checkpoints go through
    :meth:`save_parameters` / :meth:`load_parameters`: each worker writes its own slices
    (:func:`gluonfr.nn.partial_fc.worker_file`) and a resume reads every worker's file,
    whatever the sharding that wrote them.
    """

    def __init__(self, pfc, loss, **kwargs):
        super().__init__(**kwargs)
        check_partial_fc_loss(loss)
        self.pfc = pfc
        self.loss = loss

    def forward(self, *args):
        raise TypeError("PartialFCHead is driven by the training loop: "
                        "pfc.forward_backward(embeddings, labels, loss)")

    def initialize(self, *args, **kwargs):
        """Nothing to do: :class:`PartialFC` initialises its slices when built."""

    def save_parameters(self, filename, deduplicate=False):
        """This worker's slices, to ``worker_file(filename, rank)``."""
        self.pfc.save_parameters(worker_file(str(filename), self.pfc.rank))

    def load_parameters(self, filename, ctx=None, **kwargs):
        """Every worker's slices of the checkpoint whose rank-0 head file is ``filename``."""
        self.pfc.load_parameters(shard_files(str(filename)))


def build_partial_fc_heads(cfg, num_classes, embedding_size, ctx, collective=None):
    """The heads of a Partial FC run: ``(main, warmup)``, sharing one :class:`PartialFC`.

    Parameters
    ----------
    cfg : TrainConfig
        ``loss`` must be a margin head of softmax form (arcface, cosface, combined,
        normface); ``sample_rate`` and ``seed`` go to the block.
    num_classes, embedding_size : int
    ctx : list of Context
        This process's devices, one slice each.
    collective : Collective, optional
        The workers of a distributed run (``None``: one process).
    """
    kw = loss_kwargs(cfg, num_classes, embedding_size)
    kw["check_label"] = False
    try:
        loss = get_loss(cfg.loss, **kw)
    except TypeError as err:
        raise ValueError(f"--loss {cfg.loss}: {err}") from None
    try:
        check_partial_fc_loss(loss)
    except ValueError as err:
        raise ValueError(f"--loss {cfg.loss} with --partial-fc / --sample-rate: {err}") from None
    pfc = PartialFC(num_classes, embedding_size, sample_rate=cfg.sample_rate, ctx=ctx,
                    collective=collective, seed=cfg.seed, prefix="fc7_")
    main = PartialFCHead(pfc, loss, prefix="head_")
    warmup = None
    if cfg.loss_warmup_iters > 0:
        warmup = PartialFCHead(pfc, NormFaceLoss(s=cfg.margin_s or 64.0, check_label=False),
                               prefix="head_")
    return main, warmup
