"""gluon-face's Residual Attention networks for faces (``attention_facenet``,
``attentionfacenet56`` / ``92`` in gluon-face 1.0.2; Wang et al., 2017, arXiv 1704.06904).

A 3x3 stride-1 stem conv, BN, ReLU; pre-activation bottlenecks (Gluon's ``BottleneckV2``:
BN, ReLU, 1x1 to C/4, BN, ReLU, 3x3, BN, ReLU, 1x1 to C, with a strided 1x1 projection of
the pre-activated input where asked) at 256, 512, 1024 and 2048 channels, each of the first
three followed by attention modules at that resolution (56, 28, 14 for a 112 input); three
2048 bottlenecks; BN, ReLU, global average pooling, a dense layer to the embedding, a
BatchNorm without scale or shift and a single-slope PReLU.

An attention module with p, t, r = 1, 2, 1: p pre units; a trunk of t units; a mask branch
that max-pools down (3/2) once per remaining resolution level (three at stage 1, two at 2,
one at 3) with r units after each pool and a skip unit on all but the coarsest level, then
goes back up through r units and a bilinear resize per level (adding the skips), and ends
in BN, ReLU, 1x1, BN, ReLU, 1x1, sigmoid; the output ``(1 + mask) * trunk`` then p post
units. Depth = 36 m + 20 for m modules per stage: 56 is (1, 1, 1), 92 (1, 2, 3), 128 (3, 3, 3).
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..registry import register_model
from .base import EmbeddingBatchNorm, GluonFaceNet, single_prelu

__all__ = ["GluonFaceAttentionNet", "gluonface_attention_facenet",
           "gluonface_attentionfacenet56", "gluonface_attentionfacenet92"]

# depth -> attention modules per stage (p, t, r = 1, 2, 1 for all of gluon-face's registered ones)
_MODULES = {56: (1, 1, 1), 92: (1, 2, 3), 128: (3, 3, 3)}


class _PreActBottleneck(HybridBlock):
    """Gluon's ``BottleneckV2`` (same attribute names): ReLU pre-activation, 1x1 / 3x3 / 1x1
    at C/4, optional strided projection of the pre-activated input."""

    def __init__(self, in_channels, channels, stride=1, project=False, **kwargs):
        super().__init__(**kwargs)
        mid = channels // 4
        with self.name_scope():
            self.bn1 = nn.BatchNorm(in_channels=in_channels)
            self.conv1 = nn.Conv2D(mid, 1, use_bias=False, in_channels=in_channels)
            self.bn2 = nn.BatchNorm(in_channels=mid)
            self.conv2 = nn.Conv2D(mid, 3, stride, 1, use_bias=False, in_channels=mid)
            self.bn3 = nn.BatchNorm(in_channels=mid)
            self.conv3 = nn.Conv2D(channels, 1, use_bias=False, in_channels=mid)
            self.downsample = (nn.Conv2D(channels, 1, stride, use_bias=False,
                                         in_channels=in_channels) if project else None)

    def hybrid_forward(self, F, x):
        pre = F.relu(self.bn1(x))
        shortcut = self.downsample(pre) if self.downsample is not None else x
        y = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return self.conv3(F.relu(self.bn3(y))) + shortcut


def _units(channels, count):
    seq = nn.HybridSequential()
    seq.add(*[_PreActBottleneck(channels, channels) for _ in range(count)])
    return seq


class _Resize(HybridBlock):
    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self._size = int(size)

    def hybrid_forward(self, F, x):
        return F.contrib.BilinearResize2D(x, height=self._size, width=self._size)


class _Mask(HybridBlock):
    """The soft mask branch of a module at ``stage`` (1, 2 or 3) on a ``size`` x ``size`` map.

    Children are named as gluon-face's ``_MaskBlock``: per level k (from ``stage`` to 3)
    ``down_sample_k``, ``down_res_unit_k``, ``skip_connection_k`` (not on level 3),
    ``up_res_unit_k``, ``up_sample_k``; then ``output``.
    """

    def __init__(self, channels, stage, size, r=1, **kwargs):
        super().__init__(**kwargs)
        self._levels = tuple(range(stage, 4))
        with self.name_scope():
            for level in self._levels:
                setattr(self, f"down_sample_{level}", nn.MaxPool2D(3, 2, 1))
                setattr(self, f"down_res_unit_{level}", _units(channels, r))
                if level < 3:
                    setattr(self, f"skip_connection_{level}", _PreActBottleneck(channels, channels))
                setattr(self, f"up_res_unit_{level}", _units(channels, r))
                # each level's up-sampling returns to the size of the map it pooled
                setattr(self, f"up_sample_{level}", _Resize(size))
                size //= 2
            self.output = nn.HybridSequential()
            self.output.add(nn.BatchNorm(in_channels=channels), nn.Activation("relu"),
                            nn.Conv2D(channels, 1, use_bias=False, in_channels=channels),
                            nn.BatchNorm(in_channels=channels), nn.Activation("relu"),
                            nn.Conv2D(channels, 1, use_bias=False, in_channels=channels),
                            nn.Activation("sigmoid"))

    def hybrid_forward(self, F, x):
        skips = []
        for level in self._levels:
            x = getattr(self, f"down_res_unit_{level}")(getattr(self, f"down_sample_{level}")(x))
            if level < 3:
                skips.append(getattr(self, f"skip_connection_{level}")(x))
        for level in reversed(self._levels):
            if level < 3:
                x = x + skips.pop()
            x = getattr(self, f"up_sample_{level}")(getattr(self, f"up_res_unit_{level}")(x))
        return self.output(x)


class _AttentionModule(HybridBlock):
    """``pre`` units, then ``(1 + mask_branch) * trunk_branch``, then ``post`` units."""

    def __init__(self, channels, stage, size, p=1, t=2, r=1, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.pre = _units(channels, p)
            self.trunk_branch = _units(channels, t)
            self.mask_branch = _Mask(channels, stage, size, r)
            self.post = _units(channels, p)

    def hybrid_forward(self, F, x):
        x = self.pre(x)
        return self.post((1 + self.mask_branch(x)) * self.trunk_branch(x))


class GluonFaceAttentionNet(GluonFaceNet):
    """gluon-face 1.0.2's ``AttentionNetFace``; input (N, 3, H, W) RGB in 0..255.

    Parameters
    ----------
    num_layers : int
        56, 92 or 128 (``attention_facenet`` is 128).
    embedding_size : int
        Output dimension (gluon-face's default 512).
    input_size : int
        Square input side, a multiple of 16; gluon-face hard-coded the attention maps for
        112 (56, 28, 14).
    **kwargs
        ``classes``, ``weight_norm``, ``feature_norm``, ``need_cls_layer``: see
        :class:`~gluonfr.model_zoo.gluonface.GluonFaceNet`.
    """

    def __init__(self, num_layers, embedding_size=512, input_size=112, **kwargs):
        if num_layers not in _MODULES:
            raise ValueError(f"gluon-face attention-net depth must be one of "
                             f"{sorted(_MODULES)}, got {num_layers!r}")
        if input_size < 16 or input_size % 16:
            raise ValueError(f"input_size must be a positive multiple of 16, got {input_size!r}")
        super().__init__(embedding_size, **kwargs)
        body = self.features
        with body.name_scope():
            body.add(nn.Conv2D(64, 3, 1, 1, use_bias=False, in_channels=3),
                     nn.BatchNorm(in_channels=64), nn.Activation("relu"))
            width, size = 64, input_size
            for stage, modules in enumerate(_MODULES[num_layers], start=1):
                channels, size = 256 * 2 ** (stage - 1), size // 2
                body.add(_PreActBottleneck(width, channels, 2, project=True))
                body.add(*[_AttentionModule(channels, stage, size) for _ in range(modules)])
                width = channels
            body.add(_PreActBottleneck(width, 2048, 2, project=True),
                     _PreActBottleneck(2048, 2048), _PreActBottleneck(2048, 2048),
                     nn.BatchNorm(in_channels=2048), nn.Activation("relu"),
                     nn.GlobalAvgPool2D(), nn.Flatten(),
                     nn.Dense(self.embedding_size, use_bias=False, in_units=2048),
                     EmbeddingBatchNorm(scale=False, center=False,
                                        in_channels=self.embedding_size),
                     single_prelu())


def _attention(depth, name):
    def build(embedding_size=512, **kwargs):
        return GluonFaceAttentionNet(depth, embedding_size=embedding_size, **kwargs)

    build.__name__ = name
    build.__doc__ = (f"gluon-face 1.0.2's ``{name[len('gluonface_'):]}`` (Residual Attention "
                     f"{depth}, 512-d by default, input 0..255 RGB divided by 255 in the "
                     f"graph). See :class:`GluonFaceAttentionNet`.")
    return register_model(build)


gluonface_attention_facenet = _attention(128, "gluonface_attention_facenet")
gluonface_attentionfacenet56 = _attention(56, "gluonface_attentionfacenet56")
gluonface_attentionfacenet92 = _attention(92, "gluonface_attentionfacenet92")
