"""IR-ResNets (insightface LResNet-E-IR, ``fresnet`` unit v3 / arcface_torch ``iresnet``).

A 3x3 stride-1 stem keeps the 112x112 resolution ("L"); four stages of IR units at 64, 128,
256 and 512 channels each start with stride 2 (112 -> 56 -> 28 -> 14 -> 7); the "E" head
is BatchNorm, Dropout, a dense layer from the whole 512x7x7 map to the embedding and a
BatchNorm with gamma fixed at 1. Every BatchNorm has eps 2e-5 (``bn_eps``) and momentum 0.9.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..nn.blocks import ConvBN, InputNormalize, SEBlock
from ._utils import final_map_size
from .registry import register_model

__all__ = ["IResNet", "IRUnit", "iresnet18", "iresnet34", "iresnet50", "iresnet100",
           "se_iresnet50", "se_iresnet100"]

_EPS = 2e-5
_MOMENTUM = 0.9
_STAGE_CHANNELS = (64, 128, 256, 512)
_UNITS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


class IRUnit(HybridBlock):
    """IR unit: BN, conv3x3, BN, PReLU, conv3x3 (stride here), BN, [SE], + shortcut.

    The shortcut is the identity, or a strided 1x1 conv with BN when the shape changes.
    Nothing follows the addition.
    """

    def __init__(self, in_channels, channels, stride, use_se=False, bn_eps=_EPS, **kwargs):
        super().__init__(**kwargs)
        bn = {"epsilon": bn_eps, "momentum": _MOMENTUM}
        with self.name_scope():
            self.bn1 = nn.BatchNorm(in_channels=in_channels, **bn)
            self.conv1 = ConvBN(in_channels, channels, 3, 1, **bn)
            self.conv2 = ConvBN(channels, channels, 3, stride, act=False, **bn)
            self.se = SEBlock(channels) if use_se else None
            self.shortcut = (ConvBN(in_channels, channels, 1, stride, act=False, **bn)
                             if stride != 1 or in_channels != channels else None)

    def hybrid_forward(self, F, x):
        out = self.conv2(self.conv1(self.bn1(x)))
        if self.se is not None:
            out = self.se(out)
        return out + (self.shortcut(x) if self.shortcut is not None else x)


class IResNet(HybridBlock):
    """LResNet-E-IR embedding network; input (N, 3, H, W) RGB in 0..255, output (N, D).

    Parameters
    ----------
    units : sequence of 4 int
        IR units per stage.
    embedding_size : int
        Embedding dimension D (default 512).
    use_se : bool
        Squeeze-excitation in every unit (the ``se_`` models).
    dropout : float
        Dropout before the embedding layer (insightface 0.4; identity at inference).
    input_size : int or (int, int)
        Input height and width (multiples of 16); sets the embedding layer's input size.
    channels : sequence of 4 int
        Channels of the four stages (the stem has the first); insightface ``(64, 128, 256,
        512)``.
    bn_eps : float
        BatchNorm epsilon everywhere (insightface's fresnet 2e-5, arcface_torch 1e-5):
        imported weights keep the epsilon they were trained with.
    input_mean, input_scale : float
        In-graph input normalisation ``(x - input_mean) * input_scale``; insightface's
        ``127.5`` and ``1/128`` (arcface_torch trained with ``1/127.5``).

    Attributes
    ----------
    embedding_size : int
    """

    def __init__(self, units, embedding_size=512, use_se=False, dropout=0.4, input_size=112,
                 channels=_STAGE_CHANNELS, bn_eps=_EPS, input_mean=127.5,
                 input_scale=1.0 / 128, **kwargs):
        super().__init__(**kwargs)
        if len(units) != 4 or min(units) < 1:
            raise ValueError(f"units must be 4 positive unit counts, got {units!r}")
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"channels must be 4 positive widths, got {channels!r}")
        map_h, map_w = final_map_size(input_size, 16)
        self.embedding_size = int(embedding_size)
        bn = {"epsilon": bn_eps, "momentum": _MOMENTUM}
        with self.name_scope():
            self.normalize = InputNormalize(input_mean, input_scale)
            self.stem = ConvBN(3, channels[0], 3, 1, **bn)
            self.features = nn.HybridSequential()
            in_channels = channels[0]
            for count, width in zip(units, channels):
                stage = nn.HybridSequential()
                stage.add(IRUnit(in_channels, width, 2, use_se, bn_eps))
                stage.add(*[IRUnit(width, width, 1, use_se, bn_eps) for _ in range(count - 1)])
                self.features.add(stage)
                in_channels = width
            self.bn = nn.BatchNorm(in_channels=in_channels, **bn)
            self.dropout = nn.Dropout(dropout) if dropout > 0 else None
            self.embedding = nn.Dense(self.embedding_size,
                                      in_units=in_channels * map_h * map_w)
            self.embedding_bn = nn.BatchNorm(scale=False, in_channels=self.embedding_size,
                                             **bn)

    def hybrid_forward(self, F, x):
        x = self.bn(self.features(self.stem(self.normalize(x))))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.embedding_bn(self.embedding(x))


def _iresnet(depth, use_se=False, embedding_size=512, units=None, **kwargs):
    # ``units`` overrides the depth's counts: imported checkpoints of any depth keep the
    # nearest registered name
    return IResNet(units or _UNITS[depth], embedding_size=embedding_size, use_se=use_se,
                   **kwargs)


@register_model
def iresnet18(**kwargs):
    """LResNet18E-IR: units (2, 2, 2, 2), 512-d, 24.0M parameters. See :class:`IResNet`."""
    return _iresnet(18, **kwargs)


@register_model
def iresnet34(**kwargs):
    """LResNet34E-IR: units (3, 4, 6, 3), 512-d, 34.1M parameters. See :class:`IResNet`."""
    return _iresnet(34, **kwargs)


@register_model
def iresnet50(**kwargs):
    """LResNet50E-IR: units (3, 4, 14, 3), 512-d, 43.6M parameters. See :class:`IResNet`."""
    return _iresnet(50, **kwargs)


@register_model
def iresnet100(**kwargs):
    """LResNet100E-IR: units (3, 13, 30, 3), 512-d, 65.2M parameters. See :class:`IResNet`."""
    return _iresnet(100, **kwargs)


@register_model
def se_iresnet50(**kwargs):
    """SE-LResNet50E-IR: :func:`iresnet50` with squeeze-excitation in every unit."""
    return _iresnet(50, use_se=True, **kwargs)


@register_model
def se_iresnet100(**kwargs):
    """SE-LResNet100E-IR: :func:`iresnet100` with squeeze-excitation in every unit."""
    return _iresnet(100, use_se=True, **kwargs)
