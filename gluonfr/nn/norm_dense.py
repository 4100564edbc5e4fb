"""Cosine classifier layer: logits are cos(theta) between embeddings and class centres."""
import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

__all__ = ["NormDense", "l2_normalize"]

# L2Normalization's default eps (1e-10) is added to the squared norm: against class centres
# initialised at Normal(0.01) (squared norm ~1e-4 for 128-d, less after weight decay) it biases
# every cosine by ~1e-6 relative or more. 1e-20 is still a normal float32 and keeps a zero row
# finite (0 / 1e-10).
_EPS = 1e-20


def l2_normalize(F, x, float16=False):
    """Row-wise L2 normalisation that stays finite for float16 data.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    x : NDArray or Symbol
        (N, D) rows to normalise.
    float16 : bool
        ``True`` when ``x`` is float16. The sum of squares then runs in float32 (512 values of
        magnitude ~12 already overflow float16's 65504, and tiny weights underflow to a zero
        norm) and the result is cast back to float16.

    Returns
    -------
    NDArray or Symbol
        ``x / ||x||`` row-wise, same dtype as ``x``.
    """
    if not float16:
        return F.L2Normalization(x, mode="instance", eps=_EPS)
    normed = F.L2Normalization(F.cast(x, "float32"), mode="instance", eps=_EPS)
    return F.cast(normed, "float16")


class NormDense(HybridBlock):
    """Fully connected layer without bias whose output is the cosine similarity matrix.

    With both normalisations on, ``out[i, j] = cos(theta_ij) = <x_i/|x_i|, w_j/|w_j|>``: the
    input of the margin losses in :mod:`gluonfr.loss`.

    Parameters
    ----------
    classes : int
        Number of classes C (rows of the class-centre matrix).
    in_units : int
        Embedding size D (> 0: deferred shape inference cannot see through the weight
        normalisation).
    weight_norm : bool, default True
        L2-normalise each class centre.
    feature_norm : bool, default True
        L2-normalise each input embedding.
    dtype : str, default 'float32'
        Parameter dtype. With float16 the normalisations run in float32 (see
        :func:`l2_normalize`); the matrix product stays float16 (MXNet's float16
        ``FullyConnected`` needs a GPU).
    weight_initializer : Initializer, default ``Normal(0.01)``
        As insightface's ``fc7_weight``.
    centers_per_class : int, default 1
        K sub-centres per class (sub-center ArcFace, Deng et al. ECCV 2020): the weight is
        (C*K, D), rows ``c*K .. c*K + K-1`` the centres of class c, and the class cosine is
        the largest of its K cosines.

    Inputs: ``x`` (N, D). Output: (N, C) cosines, in the parameter dtype.
    """

    def __init__(self, classes, in_units, weight_norm=True, feature_norm=True, dtype="float32",
                 weight_initializer=None, centers_per_class=1, **kwargs):
        super().__init__(**kwargs)
        if int(centers_per_class) < 1 or int(centers_per_class) != centers_per_class:
            raise ValueError(f"NormDense: centers_per_class must be a positive integer, got "
                             f"{centers_per_class!r}")
        self._k = int(centers_per_class)
        if int(classes) <= 0:
            raise ValueError(f"NormDense: classes must be a positive integer, got {classes!r}")
        if int(in_units) <= 0:
            raise ValueError(f"NormDense: in_units must be a positive integer, got {in_units!r}")
        self._classes = int(classes)
        self._in_units = int(in_units)
        self._weight_norm = bool(weight_norm)
        self._feature_norm = bool(feature_norm)
        if weight_initializer is None:
            weight_initializer = mx.init.Normal(0.01)
        with self.name_scope():
            self.weight = self.params.get("weight",
                                          shape=(self._classes * self._k, self._in_units),
                                          init=weight_initializer, dtype=dtype)

    def hybrid_forward(self, F, x, weight):
        # The parameter dtype is known when the graph is built (also under hybridize).
        half = np.dtype(self.weight.dtype) == np.float16
        if self._feature_norm:
            x = l2_normalize(F, x, half)
        if self._weight_norm:
            weight = l2_normalize(F, weight, half)
        cos = F.FullyConnected(x, weight, no_bias=True, num_hidden=self._classes * self._k,
                               flatten=True)
        if self._k > 1:
            cos = F.max(F.reshape(cos, shape=(0, self._classes, self._k)), axis=2)
        return cos

    @property
    def centers_per_class(self):
        """K, the sub-centres per class."""
        return self._k

    def __repr__(self):
        return (f"{self.__class__.__name__}({self._classes}, in_units={self._in_units}, "
                f"weight_norm={self._weight_norm}, feature_norm={self._feature_norm}"
                + (f", centers_per_class={self._k})" if self._k > 1 else ")"))
