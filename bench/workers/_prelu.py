"""A PROTOTYPE of a proposed library change, used only by the ``--dwconv-prelu`` benchmark rows.

MXNet 1.9.1 has no oneDNN kernel for per-channel PReLU (``LeakyReLU(act_type='prelu')``): its
forward is a broadcast kernel and its backward computes the slope gradient with a generic
broadcast reduction, which is most of MobileFaceNet's training time on CPU. The same function,

    prelu(x) = relu(x) + alpha * min(x, 0),   min(x, 0) = x - relu(x),

with ``alpha * .`` as a 1x1 depthwise convolution (weight = the slopes), runs on oneDNN
kernels forward and backward. The forward and the input gradient are the same numbers (one
product per element, no accumulation); the slope gradient is a sum in another order.
:func:`use_dwconv_prelu` swaps every ``nn.PReLU`` of a network for this form, sharing the
slope parameters (same names, same files).
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock


class DWConvPReLU(HybridBlock):
    """Per-channel PReLU as ``relu(x) + dwconv1x1(x - relu(x), alpha)``; holds ``alpha``."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self._channels = int(channels)
        with self.name_scope():
            self.alpha = self.params.get("alpha", shape=(self._channels,))

    def hybrid_forward(self, F, x, alpha):
        pos = F.relu(x)
        weight = F.reshape(alpha, shape=(-1, 1, 1, 1))
        neg = F.Convolution(x - pos, weight, kernel=(1, 1), num_filter=self._channels,
                            num_group=self._channels, no_bias=True)
        return pos + neg


def use_dwconv_prelu(block):
    """Replace every per-channel ``nn.PReLU`` child of ``block`` (recursively); returns it."""
    for name, child in list(block._children.items()):
        if isinstance(child, nn.PReLU) and child.alpha.shape[0] > 1:
            # sharing the ParameterDict hands over the slopes (same name, same data)
            new = DWConvPReLU(child.alpha.shape[0], prefix=child.prefix, params=child.params)
            block._children[name] = new
            if getattr(block, name, None) is child:
                # Block.__setattr__ refuses to change a child's type
                object.__setattr__(block, name, new)
        else:
            use_dwconv_prelu(child)
    return block
