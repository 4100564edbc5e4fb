"""What every gluon-face network shares: the input scaling and the embedding-only contract.

gluon-face 1.0.2 (PyPI ``gluonfr==1.0.2``) fed its networks ``ToTensor`` output, RGB in [0, 1].
Here the division by 255 is the first operation of the graph, so these networks take 0..255
RGB like every gluonfr network and reproduce gluon-face's outputs on ``x / 255``.

gluon-face's ``FrBase`` held the body in ``features`` (ending in the embedding layer) and an
optional cosine classifier in ``output``. The same ``features`` attribute holds the same
children here, so the structural parameter names of a gluon-face ``save_parameters`` file
(``features.0.0.weight`` ...) are this network's own names and the file loads as it is
(:func:`gluonfr.model_zoo.import_model` with ``fmt='gluon-face'`` drops the classifier).
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ...nn.norm_dense import NormDense

__all__ = ["GluonFaceNet", "EmbeddingBatchNorm", "single_prelu"]


def single_prelu():
    """gluon-face's activation: Gluon's ``nn.PReLU`` with ONE slope shared by all channels
    (``alpha`` of shape (1,), initialised at 0.25); insightface and gluonfr's own networks
    learn one slope per channel."""
    return nn.PReLU()


class EmbeddingBatchNorm(nn.BatchNorm):
    """``nn.BatchNorm`` over a (N, C) embedding, computed on its (N, C, 1, 1) view.

    Same parameters, names and values as ``nn.BatchNorm`` on the 2-D input. MXNet 1.9.1's
    oneDNN BatchNorm on a 2-D input can crash the process (a segmentation fault; seen with
    gluon-face's own SE-ResNet run after its MobileFaceNet in one process); the 4-D path is
    the one every convolutional BatchNorm takes.
    """

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        y = super().hybrid_forward(F, F.reshape(x, shape=(0, 0, 1, 1)), gamma, beta,
                                   running_mean, running_var)
        return F.reshape(y, shape=(0, 0))


class GluonFaceNet(HybridBlock):
    """Base of the gluon-face architectures: ``features(x / 255)``.

    Embedding-only by default, like every gluonfr network. With ``classes > 0`` it also
    carries gluon-face's cosine classifier ``output`` (a :class:`gluonfr.nn.NormDense` with
    gluon-face's ``weight_norm`` / ``feature_norm`` flags) and returns ``(embedding,
    logits)`` as gluon-face's ``FrBase`` did, so a whole-net gluon-face file loads with
    ``load_parameters`` and training continues where gluon-face stopped.

    Parameters
    ----------
    embedding_size : int
        Output dimension.
    classes : int
        Classes of the classifier; none when <= 0 (the default).
    weight_norm, feature_norm : bool
        gluon-face's ``NormDense`` flags (its train script set both: cosine logits).
    need_cls_layer : bool, optional
        gluon-face's switch; default: whether ``classes > 0``.

    Attributes
    ----------
    embedding_size : int
    features : mxnet.gluon.nn.HybridSequential
        gluon-face's body, children in gluon-face's order.
    preprocessing : str
        ``'gluon-face'``: the network divides 0..255 RGB by 255 (no mean, no std).
    """

    preprocessing = "gluon-face"

    def __init__(self, embedding_size, classes=-1, weight_norm=False, feature_norm=False,
                 need_cls_layer=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding_size = int(embedding_size)
        if need_cls_layer is None:
            need_cls_layer = classes > 0
        if need_cls_layer and classes <= 0:
            raise ValueError(f"{type(self).__name__}: need_cls_layer=True needs classes > 0, "
                             f"got classes={classes!r}")
        with self.name_scope():
            self.features = nn.HybridSequential()
            # prefix as gluon-face's, so an export() names it '..._output_weight' as there
            self.output = (NormDense(classes, self.embedding_size, weight_norm=weight_norm,
                                     feature_norm=feature_norm, prefix="output_")
                           if need_cls_layer else None)

    def hybrid_forward(self, F, x):
        # a division, not a multiplication by 1/255: bit-for-bit what ToTensor computed
        embedding = self.features(x / 255.0)
        if self.output is None:
            return embedding
        return embedding, self.output(embedding)
