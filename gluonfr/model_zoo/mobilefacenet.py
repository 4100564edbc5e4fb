"""MobileFaceNet (Chen et al., 2018, arXiv 1804.07573) as insightface's ``y1`` configuration.

Stem conv 3x3/2 and a depthwise 3x3, then inverted-residual bottlenecks
(expansion 1x1 -> depthwise 3x3 -> linear 1x1; a shortcut when stride is 1), a 1x1 conv to
512, the global depthwise conv (GDC: a 7x7 depthwise conv over the whole 7x7 map, linear,
with BatchNorm), a dense layer to the embedding and a BatchNorm with gamma fixed at 1.
PReLU (one slope per channel) follows every non-linear conv. 0.99M parameters and 221M
multiply-adds at 112x112 for the 128-d embedding.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..nn.blocks import ConvBN, InputNormalize
from ._utils import final_map_size
from .registry import register_model

__all__ = ["MobileFaceNet", "mobilefacenet"]

# insightface's fmobilefacenet: BatchNorm with MXNet's default eps in the body (and in the GDC,
# built by its ``Linear`` helper), eps 2e-5 on the embedding.
_BODY_EPS = 1e-3
_EMBEDDING_EPS = 2e-5


def _scaled(channels, width_mult):
    # multiples of 8 keep vectorised kernels on full registers; exact for width_mult=1
    return max(8, int(channels * width_mult + 4) // 8 * 8)


class Bottleneck(HybridBlock):
    """Inverted residual: 1x1 expand (PReLU), depthwise 3x3 (PReLU), linear 1x1 projection.

    The shortcut is the identity, present when the stride is 1 and channels are unchanged.
    """

    def __init__(self, in_channels, channels, expansion_channels, stride, bn_eps=_BODY_EPS,
                 **kwargs):
        super().__init__(**kwargs)
        self.residual = stride == 1 and in_channels == channels
        with self.name_scope():
            self.expand = ConvBN(in_channels, expansion_channels, 1, epsilon=bn_eps)
            self.depthwise = ConvBN(expansion_channels, expansion_channels, 3, stride,
                                    groups=expansion_channels, epsilon=bn_eps)
            self.project = ConvBN(expansion_channels, channels, 1, act=False,
                                  epsilon=bn_eps)

    def hybrid_forward(self, F, x):
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class MobileFaceNet(HybridBlock):
    """MobileFaceNet embedding network; input (N, 3, H, W) RGB in 0..255, output (N, D).

    Parameters
    ----------
    embedding_size : int
        Embedding dimension D (paper and insightface ``y1``: 128).
    width_mult : float
        Multiplier of the body's channels (64 / 128 and the expansions); the 512-channel
        head is kept. This widens insightface's ``y1`` network; it is *not* arcface_torch's
        ``mbf``, which keeps its expansions unscaled, uses a grouped ``conv_2_dw`` and a
        bias-free linear + BatchNorm1d head: at 512-d ``width_mult=2`` has 3,683,584
        parameters (:func:`gluonfr.utils.summary`), ``mbf`` about 2.06M.
    blocks : sequence of 4 int
        Units per group: insightface's ``net_blocks``; ``(1, 4, 6, 2)`` is ``y1`` (the
        paper), ``(2, 8, 16, 4)`` is ``y2``. The first is the depthwise stem conv when 1,
        else that many residual bottlenecks at 64 channels.
    input_size : int or (int, int)
        Input height and width; the GDC kernel covers the whole final map (size / 16).
    bn_eps, embedding_eps : float
        BatchNorm epsilon of the body and GDC (insightface built them with MXNet's default
        1e-3) and of the embedding BatchNorm (2e-5): imported weights keep theirs.
    input_mean, input_scale : float
        In-graph input normalisation ``(x - input_mean) * input_scale`` (insightface:
        ``127.5``, ``1/128``).

    Attributes
    ----------
    embedding_size : int
    """

    def __init__(self, embedding_size=128, width_mult=1.0, blocks=(1, 4, 6, 2),
                 input_size=112, bn_eps=_BODY_EPS, embedding_eps=_EMBEDDING_EPS,
                 input_mean=127.5, input_scale=1.0 / 128, **kwargs):
        super().__init__(**kwargs)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be 4 positive unit counts, got {blocks!r}")
        gdc_kernel = final_map_size(input_size, 16)
        self.embedding_size = int(embedding_size)
        c64, c128 = _scaled(64, width_mult), _scaled(128, width_mult)
        head = 512

        eps = bn_eps

        def residuals(channels, expansion, count):
            return [Bottleneck(channels, channels, expansion, 1, eps) for _ in range(count)]

        with self.name_scope():
            self.normalize = InputNormalize(input_mean, input_scale)
            self.features = nn.HybridSequential()
            self.features.add(ConvBN(3, c64, 3, 2, epsilon=eps))                 # conv_1
            if blocks[0] == 1:                                                   # conv_2_dw
                self.features.add(ConvBN(c64, c64, 3, 1, groups=c64, epsilon=eps))
            else:
                self.features.add(*residuals(c64, c64, blocks[0]))
            self.features.add(Bottleneck(c64, c64, 2 * c64, 2, eps))             # dconv_23
            self.features.add(*residuals(c64, 2 * c64, blocks[1]))               # res_3
            self.features.add(Bottleneck(c64, c128, 4 * c64, 2, eps))            # dconv_34
            self.features.add(*residuals(c128, 2 * c128, blocks[2]))             # res_4
            self.features.add(Bottleneck(c128, c128, 4 * c128, 2, eps))          # dconv_45
            self.features.add(*residuals(c128, 2 * c128, blocks[3]))             # res_5
            self.features.add(ConvBN(c128, head, 1, epsilon=eps))                # conv_6sep
            self.gdc = ConvBN(head, head, gdc_kernel, 1, padding=0,
                              groups=head, act=False, epsilon=eps)
            self.embedding = nn.Dense(self.embedding_size, in_units=head)
            self.embedding_bn = nn.BatchNorm(scale=False, epsilon=embedding_eps,
                                             momentum=0.9, in_channels=self.embedding_size)

    def hybrid_forward(self, F, x):
        x = self.features(self.normalize(x))
        return self.embedding_bn(self.embedding(self.gdc(x)))


@register_model
def mobilefacenet(embedding_size=128, width_mult=1.0, **kwargs):
    """MobileFaceNet, insightface ``y1`` (the paper's network): 128-d, 0.99M parameters,
    221M multiply-adds at 112x112. See :class:`MobileFaceNet` for the arguments."""
    return MobileFaceNet(embedding_size=embedding_size, width_mult=width_mult, **kwargs)
