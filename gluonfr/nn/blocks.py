"""Building blocks shared by the embedding networks of :mod:`gluonfr.model_zoo`.

Every block declares its input channels, so parameters have their shapes at construction:
``initialize`` materialises them at once (no deferred initialisation) and files load into a
freshly built network without a forward pass first.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .prelu import PReLU

__all__ = ["InputNormalize", "ConvBN", "SEBlock"]


class InputNormalize(HybridBlock):
    """Map 0..255 pixels to about -1..1 inside the graph: ``(x - mean) * scale``.

    The defaults are insightface's ``(x - 127.5) * 0.0078125`` (= ``/ 128``). Both constants
    are exact in float16, and scalar operators keep the input's dtype, so the block works
    unchanged after ``net.cast('float16')``.

    Parameters
    ----------
    mean : float
        Subtracted first.
    scale : float
        Multiplied second.
    """

    def __init__(self, mean=127.5, scale=1.0 / 128, **kwargs):
        super().__init__(**kwargs)
        self._mean = float(mean)
        self._scale = float(scale)

    def hybrid_forward(self, F, x):
        return (x - self._mean) * self._scale

    def __repr__(self):
        return f"{type(self).__name__}(mean={self._mean}, scale={self._scale})"


class ConvBN(HybridBlock):
    """Convolution without bias, BatchNorm, then an optional per-channel PReLU.

    Parameters
    ----------
    in_channels, channels : int
        Input and output channels.
    kernel : int or (int, int)
        Kernel size.
    stride : int
        Stride.
    padding : int, optional
        Zero padding; default ``kernel // 2`` (same size at stride 1).
    groups : int
        Convolution groups (``groups == in_channels == channels`` is depthwise).
    act : bool
        Append ``PReLU`` with one slope per channel (as insightface; a single shared slope
        was a known defect of gluon-face).
    epsilon, momentum : float
        BatchNorm settings.

    Children are named ``conv``, ``bn`` and ``act`` (structural parameter names such as
    ``conv.weight``, ``bn.gamma``, ``act.alpha``).
    """

    def __init__(self, in_channels, channels, kernel=1, stride=1, padding=None, groups=1,
                 act=True, epsilon=1e-3, momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        if padding is None:
            padding = kernel // 2 if isinstance(kernel, int) else tuple(k // 2 for k in kernel)
        with self.name_scope():
            self.conv = nn.Conv2D(channels, kernel, strides=stride, padding=padding,
                                  groups=groups, use_bias=False, in_channels=in_channels)
            self.bn = nn.BatchNorm(epsilon=epsilon, momentum=momentum, in_channels=channels)
            self.act = PReLU(channels) if act else None

    def hybrid_forward(self, F, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class SEBlock(HybridBlock):
    """Squeeze-and-excitation as in insightface's IR units: global average pool, 1x1 conv
    to ``channels // reduction`` (with bias), per-channel PReLU, 1x1 conv back to
    ``channels`` (with bias), sigmoid, and the input scaled channel-wise by the result.

    Parameters
    ----------
    channels : int
        Channels of the input (and output).
    reduction : int
        Squeeze ratio.
    """

    def __init__(self, channels, reduction=16, **kwargs):
        super().__init__(**kwargs)
        mid = max(channels // reduction, 1)
        with self.name_scope():
            self.squeeze = nn.Conv2D(mid, 1, in_channels=channels)
            self.act = PReLU(mid)
            self.excite = nn.Conv2D(channels, 1, in_channels=mid)

    def hybrid_forward(self, F, x):
        w = F.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="avg")
        w = F.sigmoid(self.excite(self.act(self.squeeze(w))))
        return F.broadcast_mul(x, w)
