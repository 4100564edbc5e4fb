"""The main job of ``make demo`` (interim: prints a network summary until training lands)."""
import gluonfr  # noqa: F401  (restores numpy aliases before mxnet)
from gluonfr.utils import summary

from mxnet.gluon import nn

if __name__ == "__main__":
    net = nn.HybridSequential()
    net.add(nn.Conv2D(64, 3, strides=2, padding=1, use_bias=False), nn.BatchNorm(),
            nn.PReLU(in_channels=64), nn.GlobalAvgPool2D(), nn.Dense(128))
    print("gluonfr.utils.summary of a small conv net at 112x112:")
    summary(net, (1, 3, 112, 112))
