"""The "user's model" of the user-model benchmark: a MobileNetV3-style network with
inverted residuals (and their skip additions), depthwise convolutions, squeeze-excite and
hard-swish, as a user would bring it (any factory importable as ``module:function``)."""

from nascompress.models.mobilenet import MobileNet, StageSpec


def mobilenet_se(num_classes: int = 10, in_channels: int = 1) -> MobileNet:
    stages = [StageSpec(16, 1, 1, 3, True, 1), StageSpec(24, 2, 4, 3, True, 2),
              StageSpec(40, 2, 4, 5, True, 2, "hswish"), StageSpec(48, 2, 4, 5, True, 1, "hswish")]
    return MobileNet(in_channels=in_channels, num_classes=num_classes, stages=stages,
                     stem_channels=16, head_channels=128)
