"""gluon-face's MobileFaceNet (``mobilefacenet`` in gluon-face 1.0.2's model zoo).

The paper's table (Chen et al., 2018): a 3x3/2 stem conv and a depthwise 3x3, bottlenecks
(expansion t, channels c, repeats n, stride s) (2,64,5,2), (4,128,1,2), (2,128,6,1),
(4,128,1,2), (2,128,2,1), a 1x1 conv to 512, a linear 7x7 depthwise conv (GDConv), a 1x1
conv to 128 and a BatchNorm without scale or shift. As gluon-face built it: Gluon's
BatchNorm defaults (eps 1e-5), one shared PReLU slope per layer, the expansion width taken
from each bottleneck's *input* channels, and a residual shortcut only where the stride is 1
and the channels are unchanged. 0.995M parameters, 128-d.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .._utils import final_map_size
from ..registry import register_model
from .base import GluonFaceNet, single_prelu

__all__ = ["GluonFaceMobileFaceNet", "gluonface_mobilefacenet"]

# (expansion t, output channels c, repeats n, stride of the first)
_BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def _conv_bn(in_channels, channels, kernel=1, stride=1, groups=1, act=True, pad=None):
    """conv (no bias, "same" padding unless ``pad``) -> BatchNorm -> [single-slope PReLU],
    children 0, 1, 2."""
    seq = nn.HybridSequential()
    if pad is None:
        pad = kernel // 2
    seq.add(nn.Conv2D(channels, kernel, stride, pad, groups=groups, use_bias=False,
                      in_channels=in_channels),
            nn.BatchNorm(in_channels=channels))
    if act:
        seq.add(single_prelu())
    return seq


class _Bottleneck(HybridBlock):
    """Expand 1x1 -> depthwise 3x3 -> linear 1x1 in ``out``; identity shortcut at stride 1
    with unchanged channels."""

    def __init__(self, in_channels, channels, t, stride, **kwargs):
        super().__init__(**kwargs)
        wide = in_channels * t
        self._shortcut = stride == 1 and in_channels == channels
        with self.name_scope():
            self.out = nn.HybridSequential()
            self.out.add(_conv_bn(in_channels, wide),
                         _conv_bn(wide, wide, 3, stride, groups=wide),
                         _conv_bn(wide, channels, act=False))

    def hybrid_forward(self, F, x):
        y = self.out(x)
        return y + x if self._shortcut else y


class GluonFaceMobileFaceNet(GluonFaceNet):
    """gluon-face 1.0.2's MobileFaceNet; input (N, 3, 112, 112) RGB in 0..255, output (N, 128).

    gluon-face hard-coded the 128-d embedding and the 7x7 GDConv (a 112x112 input); here
    ``input_size`` (multiples of 16) sets the GDConv kernel to the final map, 7x7 at 112.
    ``classes``, ``weight_norm``, ``feature_norm``, ``need_cls_layer``: see
    :class:`~gluonfr.model_zoo.gluonface.GluonFaceNet`.
    """

    def __init__(self, embedding_size=128, input_size=112, **kwargs):
        if embedding_size != 128:
            raise ValueError(f"gluon-face's MobileFaceNet is 128-d (it hard-coded the size), got "
                             f"embedding_size={embedding_size!r}; gluonfr's 'mobilefacenet' "
                             f"takes any size")
        gdconv = final_map_size(input_size, 16)
        super().__init__(128, **kwargs)
        body = self.features
        with body.name_scope():
            body.add(_conv_bn(3, 64, 3, 2), _conv_bn(64, 64, 3, 1, groups=64))
            channels = 64
            for t, c, n, s in _BOTTLENECKS:
                stage = nn.HybridSequential()
                with stage.name_scope():
                    for i in range(n):
                        stage.add(_Bottleneck(channels, c, t, s if i == 0 else 1))
                        channels = c
                body.add(stage)
            body.add(_conv_bn(channels, 512),
                     _conv_bn(512, 512, gdconv, groups=512, act=False, pad=0),  # linear GDConv
                     nn.Conv2D(128, 1, use_bias=False, in_channels=512),
                     nn.BatchNorm(scale=False, center=False, in_channels=128),
                     nn.Flatten())


@register_model
def gluonface_mobilefacenet(**kwargs):
    """gluon-face 1.0.2's ``mobilefacenet``: 128-d, single-slope PReLU, input 0..255 RGB
    divided by 255 in the graph. See :class:`GluonFaceMobileFaceNet`."""
    return GluonFaceMobileFaceNet(**kwargs)
