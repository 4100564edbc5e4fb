"""The training head: classifier + loss in one block, ``(embedding, label) -> (loss, hit)``.

``hit`` is 1 where the classifier's top class (highest cosine, no margin) is the label: the
training accuracy, computed inside the graph so the loop never has to bring the (N, C) logits
back to the host.
"""
from mxnet import gluon
from mxnet.gluon import HybridBlock, nn

from ..loss import ArcFaceLoss, CombinedMarginLoss, CosFaceLoss, L2SoftmaxLoss
from ..nn import NormDense

__all__ = ["TrainHead", "build_heads"]


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
    """

    def __init__(self, classifier, loss, half=False, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.loss = loss
        self._half = bool(half)

    def hybrid_forward(self, F, embedding, label):
        if self.classifier is None:
            loss, logits = self.loss(embedding, label)
        else:
            logits = self.classifier(embedding)
            loss = self.loss(logits, label)
        if self._half:
            logits = F.cast(logits, "float32")
        hit = F.argmax(F.BlockGrad(logits), axis=1) == F.reshape(label, shape=(-1,))
        return loss, hit


def build_heads(cfg, num_classes, embedding_size):
    """The heads of a run: ``(main, warmup)``; ``warmup`` is ``None`` without loss warm-up.

    The NormFace warm-up head shares the main head's class centres, so the margin loss
    continues from the centres the warm-up learned.

    Parameters
    ----------
    cfg : TrainConfig
    num_classes, embedding_size : int
    """
    half = cfg.dtype == "float16"
    common = dict(check_label=False)  # labels are checked once per batch on the host
    s = cfg.margin_s
    classifier = None
    if cfg.loss in ("arcface", "cosface", "combined", "normface"):
        classifier = NormDense(num_classes, embedding_size, prefix="fc7_")
        if cfg.loss == "arcface":
            loss = ArcFaceLoss(s=s, m=cfg.margin_m, **common)
        elif cfg.loss == "cosface":
            loss = CosFaceLoss(s=s, m=cfg.margin_m, **common)
        elif cfg.loss == "combined":
            loss = CombinedMarginLoss(s=s, m1=cfg.margin_m1, m2=cfg.margin_m2,
                                      m3=cfg.margin_m3, **common)
        else:
            loss = CombinedMarginLoss(s=s, m1=1.0, m2=0.0, m3=0.0, **common)
    elif cfg.loss == "l2softmax":
        loss = L2SoftmaxLoss(num_classes, embedding_size, alpha=s, return_logits=True,
                             **common)
    else:  # plain softmax: the first stage of the two-stage MobileFaceNet recipe
        classifier = nn.Dense(num_classes, in_units=embedding_size, prefix="fc7_")
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
    main = TrainHead(classifier, loss, half=half, prefix="head_")
    warmup = None
    if cfg.loss_warmup_iters > 0:
        if not isinstance(classifier, NormDense):
            raise ValueError(f"--loss-warmup-iters needs a cosine head (arcface, cosface, "
                             f"combined); --loss {cfg.loss} has none")
        warmup = TrainHead(classifier, CombinedMarginLoss(s=s, m1=1.0, m2=0.0, m3=0.0,
                                                          **common),
                           half=half, prefix="head_")
    return main, warmup
