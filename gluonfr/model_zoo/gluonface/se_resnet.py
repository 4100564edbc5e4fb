"""gluon-face's "L-SE-ResNet" v2 (``l_se_resnet18v2`` / ``50v2`` / ``101v2`` in gluon-face 1.0.2).

Not insightface's LResNet-IR, whatever the name says: a BatchNorm without scale or shift on
the input, a 3x3 stride-1 stem conv, BN, PReLU and a 3x3/2 max-pool; four stages of
pre-activation SE bottlenecks (BN, PReLU, 1x1 to C/4, BN, PReLU, 3x3 with the stage's stride,
BN, PReLU, 1x1 to C, squeeze-excitation, plus the shortcut - a strided 1x1 projection of the
pre-activated input only where the channels change), the first stage at stride 1; then BN,
PReLU, global average pooling, a dense layer to the embedding, a BatchNorm without scale or
shift and a final PReLU. Every PReLU has one shared slope, every BatchNorm Gluon's defaults.
Depth 18 uses bottlenecks at 64/64/128/256/512 channels (mid widths 16 to 128: a very thin
network), 50 and 101 at 64/256/512/1024/2048.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .._utils import final_map_size
from ..registry import register_model
from .base import EmbeddingBatchNorm, GluonFaceNet, single_prelu

__all__ = ["GluonFaceSEResNet", "gluonface_l_se_resnet18v2", "gluonface_l_se_resnet50v2",
           "gluonface_l_se_resnet101v2"]

# depth -> (units per stage, channels of the stem and of the four stages)
_SPECS = {18: ((2, 2, 2, 2), (64, 64, 128, 256, 512)),
          50: ((3, 4, 6, 3), (64, 256, 512, 1024, 2048)),
          101: ((3, 4, 23, 3), (64, 256, 512, 1024, 2048))}


class _SqueezeExcite(HybridBlock):
    """gluon-face's SELayer: GAP, 1x1 conv to C/16 (bias), PReLU, 1x1 conv to C (bias),
    sigmoid (children of ``fc``), then the input scaled channel-wise."""

    def __init__(self, channels, reduction=16, **kwargs):
        super().__init__(**kwargs)
        mid = channels // reduction
        with self.name_scope():
            self.fc = nn.HybridSequential()
            self.fc.add(nn.Conv2D(mid, 1, in_channels=channels), single_prelu(),
                        nn.Conv2D(channels, 1, in_channels=mid), nn.Activation("sigmoid"))

    def hybrid_forward(self, F, x):
        return F.broadcast_mul(x, self.fc(F.Pooling(x, kernel=(1, 1), global_pool=True,
                                                  pool_type="avg")))


class _SEBottleneck(HybridBlock):
    """Pre-activation SE bottleneck (attribute names as gluon-face's ``SE_BottleneckV2``)."""

    def __init__(self, in_channels, channels, stride, **kwargs):
        super().__init__(**kwargs)
        mid = channels // 4
        with self.name_scope():
            self.bn1, self.prelu1 = nn.BatchNorm(in_channels=in_channels), single_prelu()
            self.conv1 = nn.Conv2D(mid, 1, use_bias=False, in_channels=in_channels)
            self.bn2, self.prelu2 = nn.BatchNorm(in_channels=mid), single_prelu()
            self.conv2 = nn.Conv2D(mid, 3, stride, 1, use_bias=False, in_channels=mid)
            self.bn3, self.prelu3 = nn.BatchNorm(in_channels=mid), single_prelu()
            self.conv3 = nn.Conv2D(channels, 1, use_bias=False, in_channels=mid)
            # gluon-face projects only when the channels change, even for a strided unit
            self.downsample = (nn.Conv2D(channels, 1, stride, use_bias=False,
                                         in_channels=in_channels)
                               if channels != in_channels else None)
            self.se = _SqueezeExcite(channels)

    def hybrid_forward(self, F, x):
        pre = self.prelu1(self.bn1(x))
        shortcut = self.downsample(pre) if self.downsample is not None else x
        y = self.conv2(self.prelu2(self.bn2(self.conv1(pre))))
        y = self.se(self.conv3(self.prelu3(self.bn3(y))))
        return y + shortcut


class GluonFaceSEResNet(GluonFaceNet):
    """gluon-face 1.0.2's ``SE_ResNetV2``; input (N, 3, H, W) RGB in 0..255, output (N, D).

    Parameters
    ----------
    num_layers : int
        18, 50 or 101 (gluon-face's registered depths).
    embedding_size : int
        D (gluon-face's default 512).
    input_size : int or (int, int)
        Input side(s), multiples of 16 (global average pooling takes any final map).
    **kwargs
        ``classes``, ``weight_norm``, ``feature_norm``, ``need_cls_layer``: see
        :class:`~gluonfr.model_zoo.gluonface.GluonFaceNet`.
    """

    def __init__(self, num_layers, embedding_size=512, input_size=112, **kwargs):
        if num_layers not in _SPECS:
            raise ValueError(f"gluon-face SE-ResNet depth must be one of {sorted(_SPECS)}, "
                             f"got {num_layers!r}")
        final_map_size(input_size, 16)  # the same input sizes as every gluonfr network
        super().__init__(embedding_size, **kwargs)
        units, channels = _SPECS[num_layers]
        body = self.features
        with body.name_scope():
            body.add(nn.BatchNorm(scale=False, center=False, in_channels=3),
                     nn.Conv2D(channels[0], 3, 1, 1, use_bias=False, in_channels=3),
                     nn.BatchNorm(in_channels=channels[0]), single_prelu(),
                     nn.MaxPool2D(3, 2, 1))
            width = channels[0]
            for stage_index, count in enumerate(units):
                stage = nn.HybridSequential()
                with stage.name_scope():
                    for i in range(count):
                        stride = 2 if stage_index and not i else 1
                        stage.add(_SEBottleneck(width, channels[stage_index + 1], stride))
                        width = channels[stage_index + 1]
                body.add(stage)
            body.add(nn.BatchNorm(in_channels=width), single_prelu(), nn.GlobalAvgPool2D(),
                     nn.Flatten(), nn.Dense(self.embedding_size, use_bias=False, in_units=width),
                     EmbeddingBatchNorm(scale=False, center=False,
                                        in_channels=self.embedding_size),
                     single_prelu())


def _se_resnet(depth):
    def build(embedding_size=512, **kwargs):
        return GluonFaceSEResNet(depth, embedding_size=embedding_size, **kwargs)

    build.__name__ = f"gluonface_l_se_resnet{depth}v2"
    build.__doc__ = (f"gluon-face 1.0.2's ``l_se_resnet{depth}v2`` (512-d by default, input "
                     f"0..255 RGB divided by 255 in the graph). See :class:`GluonFaceSEResNet`.")
    return register_model(build)


gluonface_l_se_resnet18v2 = _se_resnet(18)
gluonface_l_se_resnet50v2 = _se_resnet(50)
gluonface_l_se_resnet101v2 = _se_resnet(101)
