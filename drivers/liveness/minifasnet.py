"""MiniFASNet (Minivision's silent face anti-spoofing network), defined here, exported to ONNX.

Build-time only: this module needs torch, which a terminal does not install. On a build machine
(or a developer's) the state dicts are loaded into the definition below and exported to ONNX once
into a cache directory; the terminal runs the ONNX file with OpenCV DNN (:mod:`runner`).

The definition follows the published description of the architecture: a pruned MobileFaceNet.
A 3x3 stride-2 convolution stem and a 3x3 depthwise convolution; then depthwise-separable
blocks (1x1 expansion, 3x3 depthwise, 1x1 linear projection), strided between stages and
residual within them; a 1x1 convolution to 512 channels; a 5x5 depthwise convolution that
reduces the 5x5 map to a 512-vector; 512->128 linear with batch norm; 128->3 classifier. Every
convolution is followed by batch norm, and by PReLU except the linear projections. The SE
variant gates the last block of each residual stage with squeeze-and-excitation.

Pruning left every block with its own expansion width, so widths (and where SE modules sit) are
read from the state dict's tensor shapes rather than written out here.
"""

import argparse
import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

INPUT_SIZE = 80
_STAGES = ("conv_3", "conv_4", "conv_5")
_TRANSITIONS = ("conv_23", "conv_34", "conv_45")


class ConvBlock(nn.Module):
    """Convolution, batch norm, and PReLU unless ``linear``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, *, stride: int = 1,
                 padding: int = 0, groups: int = 1, linear: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = None if linear else nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.prelu is None:
            return x
        result: torch.Tensor = self.prelu(x)
        return result


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate: torch.Tensor = self.sigmoid(
            self.bn2(self.fc2(self.relu(self.bn1(self.fc1(self.pool(x))))))
        )
        return x * gate


class SeparableBlock(nn.Module):
    """1x1 expansion -> 3x3 depthwise (``stride``) -> 1x1 projection, optional SE and shortcut."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int, *, residual: bool,
                 se_hidden: int | None = None) -> None:  # fmt: skip
        super().__init__()
        self.residual = residual
        self.conv = ConvBlock(cin, expand)
        self.conv_dw = ConvBlock(expand, expand, 3, stride=stride, padding=1, groups=expand)
        self.project = ConvBlock(expand, cout, linear=True)
        self.se_module = None if se_hidden is None else SqueezeExcite(cout, se_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class Stage(nn.Module):
    def __init__(self, blocks: list[SeparableBlock]) -> None:
        super().__init__()
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.model(x)
        return result


@dataclass(frozen=True, slots=True)
class Widths:
    """The pruned widths of one set of weights, read from its tensor shapes."""

    stem: int
    transitions: tuple[tuple[int, int, int], ...]  # (in, expand, out) per strided block
    stages: tuple[tuple[tuple[int, int | None], ...], ...]  # (expand, SE hidden) per block
    embedding: int
    classes: int


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return tuple(int(n) for n in state[key].shape)


def read_widths(state: Mapping[str, torch.Tensor]) -> Widths:
    transitions = tuple(
        (
            _shape(state, f"{t}.conv.conv.weight")[1],
            _shape(state, f"{t}.conv.conv.weight")[0],
            _shape(state, f"{t}.project.conv.weight")[0],
        )
        for t in _TRANSITIONS
    )
    stages = []
    for name in _STAGES:
        blocks = []
        index = 0
        while f"{name}.model.{index}.conv.conv.weight" in state:
            prefix = f"{name}.model.{index}"
            se_key = f"{prefix}.se_module.fc1.weight"
            se = _shape(state, se_key)[0] if se_key in state else None
            blocks.append((_shape(state, f"{prefix}.conv.conv.weight")[0], se))
            index += 1
        stages.append(tuple(blocks))
    return Widths(
        stem=_shape(state, "conv1.conv.weight")[0],
        transitions=transitions,
        stages=tuple(stages),
        embedding=_shape(state, "linear.weight")[0],
        classes=_shape(state, "prob.weight")[0],
    )


class MiniFASNet(nn.Module):
    def __init__(self, widths: Widths) -> None:
        super().__init__()
        stem = widths.stem
        self.conv1 = ConvBlock(3, stem, 3, stride=2, padding=1)
        self.conv2_dw = ConvBlock(stem, stem, 3, padding=1, groups=stem)
        names = ("conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5")
        channels = stem
        for i, (cin, expand, cout) in enumerate(widths.transitions):
            setattr(self, names[2 * i], SeparableBlock(cin, cout, expand, 2, residual=False))
            blocks = [
                SeparableBlock(cout, cout, e, 1, residual=True, se_hidden=se)
                for e, se in widths.stages[i]
            ]
            setattr(self, names[2 * i + 1], Stage(blocks))
            channels = cout
        self.conv_6_sep = ConvBlock(channels, 512)
        self.conv_6_dw = ConvBlock(512, 512, 5, groups=512, linear=True)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(512, widths.embedding, bias=False)
        self.bn = nn.BatchNorm1d(widths.embedding)
        self.drop = nn.Dropout(0.2)
        self.prob = nn.Linear(widths.embedding, widths.classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2_dw(self.conv1(x))
        for name in ("conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5"):
            x = getattr(self, name)(x)
        x = self.conv_6_dw(self.conv_6_sep(x))
        result: torch.Tensor = self.prob(self.drop(self.bn(self.linear(self.flatten(x)))))
        return result


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict with DataParallel's ``module.`` prefix removed; tensors only (safe load)."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in raw.items()}


def load(path: Path) -> MiniFASNet:
    """The network with the file's weights, strictly: every tensor must find its place."""
    state = load_state(path)
    net = MiniFASNet(read_widths(state))
    net.load_state_dict(state, strict=True)
    net.eval()
    return net


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def onnx_name(sha256: str) -> str:
    return f"minifasnet-{sha256[:16]}.onnx"


def export(path: Path, out_dir: Path) -> Path:
    """Export the weights at ``path`` to ``out_dir``; the file name carries the weights' hash,
    so a cache never serves the export of other weights."""
    target = out_dir / onnx_name(sha256_of(path))
    if target.is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    net = load(path)
    sample = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    partial = target.with_suffix(".partial")
    # The TorchScript exporter: no onnxscript needed, and opset 11 loads in OpenCV DNN 4.x.
    torch.onnx.export(net, (sample,), str(partial), input_names=["input"],
                      output_names=["logits"], opset_version=11, dynamo=False)  # fmt: skip
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers.liveness.minifasnet",
        description="Export MiniFASNet state dicts (.pth) to ONNX for the terminal.",
    )
    parser.add_argument("weights", type=Path, nargs="+", help="MiniFASNet .pth files")
    parser.add_argument("--out", type=Path, required=True, help="cache directory for .onnx")
    args = parser.parse_args(argv)
    for weights in args.weights:
        sys.stdout.write(f"{export(weights, args.out)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
