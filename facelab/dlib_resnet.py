"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) read in Python and run by PyTorch.

The judge's descriptor spends nearly all its time in dlib's single-threaded ResNet; the same network in torch,
batched, gives the same descriptors over ten times faster. The .dat file is dlib's serialization of `anet_type`
(dlib's dnn_face_recognition_ex.cpp): a loss layer, then every layer's version header from the output inwards,
then the input layer and each layer's details from the input outwards. Its layers are con, affine, relu, max_pool,
avg_pool, add_prev and fc; tags and skips leave only a header. The network read from it: a 7x7 stem, residual
blocks of two 3x3 convolutions each, the down blocks' shortcuts 2x2-averaged and zero-padded to the block's size
(dlib's add_prev), a global average and a 128-d fc without bias. dlib does not normalise the descriptor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelab.errors import ModelError

CHIP_SIZE = 150
"""Side of the aligned RGB face chips the network takes (dlib's input_rgb_image_sized<150>)."""

PIXEL_SCALE = 256.0
"""dlib's input layer maps a pixel value p to (p - channel mean) / 256."""


@dataclass
class Layer:
    """One layer's details as the .dat file holds them: its kind (the version name less its suffix) and values."""

    kind: str
    values: dict[str, object] = field(default_factory=dict)


class _Reader:
    """dlib's serialization primitives over the bytes of a file; a short or malformed read is a ModelError."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0

    def fail(self, problem: str) -> ModelError:
        """A ModelError naming the file, the byte offset and the problem."""
        return ModelError(f"{self.path}: cannot read dlib's face recognition ResNet ({problem} at byte {self.offset})")

    def take(self, count: int) -> bytes:
        """The next `count` bytes."""
        if count < 0 or self.offset + count > len(self.data):
            raise self.fail("truncated")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def peek_int(self) -> int:
        """The next integer, left unread."""
        start = self.offset
        value = self.int()
        self.offset = start
        return value

    def int(self) -> int:
        """A dlib integer: a control byte (bit 7 the sign, the low 4 bits the length) then little-endian bytes."""
        control = self.take(1)[0]
        size = control & 0x0F
        if not 1 <= size <= 8:
            raise self.fail("bad integer")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """A dlib floating-point number: its integer mantissa, then its integer power of two."""
        mantissa, exponent = self.int(), self.int()
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.fail("bad float") from None

    def bool(self) -> bool:
        """A dlib bool: the character '0' or '1'."""
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise self.fail("bad bool")
        return char == b"1"

    def string(self) -> str:
        """A dlib string: its length, then its bytes."""
        try:
            return self.take(self.int()).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("bad string") from None

    def shape(self) -> tuple[int, ...]:
        """An alias_tensor: version 1, then the four dimensions it views its layer's parameters as."""
        if self.int() != 1:
            raise self.fail("unknown alias_tensor version")
        return tuple(self.int() for _ in range(4))

    def tensor(self) -> np.ndarray:
        """A resizable_tensor: version 2, four dimensions, then its values as little-endian float32."""
        if self.int() != 2:
            raise self.fail("unknown tensor version")
        dims = tuple(self.int() for _ in range(4))
        count = math.prod(dims)
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(dims).astype(np.float32)


def _read_layer(reader: _Reader) -> Layer:
    """The details of one layer: its version name and the values the forward pass needs."""
    version = reader.string()
    if version == "con_4":
        params = reader.tensor().ravel()
        reader.int()  # the filter count, as the filters' shape below gives it
        values = {"size": (reader.int(), reader.int()), "stride": (reader.int(), reader.int()),
                  "padding": (reader.int(), reader.int())}
        filters, biases = reader.shape(), reader.shape()
        for _ in range(4):
            reader.float()  # learning-rate and weight-decay multipliers
        split = math.prod(filters)
        if len(params) != split + math.prod(biases):
            raise reader.fail("con parameters unlike their shapes")
        return Layer("con", {**values, "weight": params[:split].reshape(filters), "bias": params[split:]})
    if version == "affine_":
        params = reader.tensor().ravel()
        split = math.prod(reader.shape())
        if len(params) != split + math.prod(reader.shape()):
            raise reader.fail("affine parameters unlike their shapes")
        reader.int()  # mode: per channel or per value; the channel count checked when building tells
        return Layer("affine", {"gamma": params[:split], "beta": params[split:]})
    if version == "relu_":
        return Layer("relu")
    if version == "add_prev_":
        return Layer("add_prev")
    if version in ("max_pool_2", "avg_pool_2"):
        return Layer(version[:-2], {"size": (reader.int(), reader.int()), "stride": (reader.int(), reader.int()),
                                    "padding": (reader.int(), reader.int())})
    if version == "fc_2":
        outputs, inputs = reader.int(), reader.int()
        params = reader.tensor().ravel()
        reader.shape()
        reader.shape()
        reader.int()  # bias mode
        for _ in range(4):
            reader.float()
        if len(params) != inputs * outputs:
            raise reader.fail("fc with bias")
        return Layer("fc", {"weight": params.reshape(inputs, outputs)})
    raise reader.fail(f"unsupported layer {version!r}")


def read_layers(path: Path) -> tuple[tuple[float, float, float], list[Layer]]:
    """The input layer's RGB means and every layer's details, input first, of the dlib network file at `path`."""
    try:
        reader = _Reader(path.read_bytes(), path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    if reader.int() != 1 or reader.string() != "loss_metric_2":
        raise reader.fail("not a metric-loss network")
    for _ in range(2):
        reader.float()  # the training margin and distance threshold
    headers = []
    while reader.peek_int() <= 3:  # version headers (add_layer 2 or 3, tag and skip 1) until the input's name
        headers.append(reader.int())
    if reader.string() != "input_rgb_image_sized":
        raise reader.fail("not an RGB image network")
    means = (reader.float(), reader.float(), reader.float())
    if (reader.int(), reader.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise reader.fail(f"input not {CHIP_SIZE}x{CHIP_SIZE}")
    layers = []
    for index, version in enumerate(v for v in reversed(headers) if v > 1):
        if version != (3 if index == 0 else 2):
            raise reader.fail(f"unsupported add_layer version {version}")
        layers.append(_read_layer(reader))
        for _ in range(3):
            reader.bool()  # setup and gradient flags
        for _ in range(3):
            reader.tensor()  # stored gradients and outputs, empty in a saved network
        if index == 0:
            reader.int()  # sample expansion factor
    if reader.offset != len(reader.data):
        raise reader.fail("trailing bytes")
    return means, layers


class _Layers:
    """The layers of a network file, taken in order, each checked to be of the kind the network expects there."""

    def __init__(self, layers: list[Layer], path: Path) -> None:
        self.layers, self.path, self.index = layers, path, 0

    def next_kind(self) -> str | None:
        """The kind of the next layer, None at the end."""
        return self.layers[self.index].kind if self.index < len(self.layers) else None

    def take(self, kind: str) -> Layer:
        """The next layer, which must be of `kind`."""
        if self.next_kind() != kind:
            raise ModelError(f"{self.path}: layer {self.index} is {self.next_kind()}, expected {kind}")
        self.index += 1
        return self.layers[self.index - 1]

    def conv(self) -> nn.Conv2d:
        """A con layer and the affine after it, folded into one convolution with bias."""
        con, affine = self.take("con").values, self.take("affine").values
        weight, gamma = np.asarray(con["weight"], np.float64), np.asarray(affine["gamma"], np.float64)
        if len(gamma) != len(weight) or len(affine["beta"]) != len(weight):
            raise ModelError(f"{self.path}: layer {self.index - 1}: affine of {len(gamma)} channels after "
                             f"{len(weight)} filters")
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], con["size"], con["stride"], con["padding"])
        conv.weight.data = torch.from_numpy(weight * gamma[:, None, None, None]).float()
        conv.bias.data = torch.from_numpy(con["bias"] * gamma + affine["beta"]).float()
        return conv


def _pool(layer: Layer) -> dict[str, tuple[int, int]]:
    """A pooling layer's torch arguments."""
    return {"kernel_size": layer.values["size"], "stride": layer.values["stride"], "padding": layer.values["padding"]}


def add_padded(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum of two (N, C, H, W) tensors, each zero-padded at the end to the larger of each size."""
    size = [max(a, b) for a, b in zip(first.shape[1:], second.shape[1:])]

    def grown(tensor: torch.Tensor) -> torch.Tensor:
        channels, height, width = (target - have for target, have in zip(size, tensor.shape[1:]))
        return F.pad(tensor, (0, width, 0, height, 0, channels)) if channels or height or width else tensor

    return grown(first) + grown(second)


class Residual(nn.Module):
    """A residual block: relu(two 3x3 convolutions + the input); a down block's input 2x2-averaged first."""

    def __init__(self, layers: _Layers) -> None:
        super().__init__()
        self.first = layers.conv()
        layers.take("relu")
        self.second = layers.conv()
        self.shortcut = _pool(layers.take("avg_pool")) if layers.next_kind() == "avg_pool" else None
        layers.take("add_prev")
        layers.take("relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        out = self.second(F.relu(self.first(x)))
        return F.relu(add_padded(out, F.avg_pool2d(x, **self.shortcut) if self.shortcut else x))


class DlibResNet(nn.Module):
    """dlib's face recognition ResNet: (N, 150, 150, 3) uint8 RGB chips -> (N, 128) descriptors, as dlib computes."""

    def __init__(self, means: tuple[float, float, float], layers: list[Layer], path: Path) -> None:
        super().__init__()
        taken = _Layers(layers, path)
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32))
        self.stem = taken.conv()
        taken.take("relu")
        self.stem_pool = _pool(taken.take("max_pool"))
        blocks = []
        while taken.next_kind() == "con":
            blocks.append(Residual(taken))
        self.blocks = nn.Sequential(*blocks)
        if taken.take("avg_pool").values["size"] != (0, 0):  # dlib's avg_pool_everything
            raise ModelError(f"{path}: the last pooling is not a global average")
        self.fc = nn.Parameter(torch.from_numpy(np.ascontiguousarray(taken.take("fc").values["weight"].T)))
        if taken.next_kind() is not None:
            raise ModelError(f"{path}: {len(layers) - taken.index} layers after the fc")

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """The descriptor of each chip."""
        x = ((chips.float() - self.means) / PIXEL_SCALE).permute(0, 3, 1, 2)
        x = F.max_pool2d(F.relu(self.stem(x)), **self.stem_pool)
        return F.linear(self.blocks(x).mean(dim=(2, 3)), self.fc)


def load_resnet(path: Path) -> DlibResNet:
    """The network of dlib's file at `path`, in torch, in eval mode; a damaged or different file is a ModelError."""
    means, layers = read_layers(path)
    return DlibResNet(means, layers, path).eval()
