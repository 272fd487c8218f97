"""Exact entropy-model parameters: the hyper-synthesis in integer arithmetic, the same on every machine.

A range coder decodes only with the very probabilities it encoded with. A scale hyperprior chooses them from
its side information through a float network (h_s) and a table look-up; another CPU backend, thread count or a
GPU rounds one scale across a table boundary now and then, the decoder picks another CDF and the rest of the
image decodes to garbage (measured with float indexes: 18 of 1,560 files, and 4 of 1,001 in tests/test_exact.py). The fix, after Ballé, Johnston and
Minnen, "Integer Networks for Data Compression with Latent-Variable Models" (ICLR 2019), is to compute that path
in integers, applied here after training:

- the input (decoded side information: whole symbols plus the stored medians, identical bits everywhere) and
  every activation are fixed-point integers at 2^-ACTIVATION_BITS; each layer's weights are rounded to integers
  at a per-layer power of two (18 bits for the largest), its bias at the product's scale;
- a layer is an im2col and a matrix product in float64 on integer values. Its inputs are clamped so that the
  L1 norm of any output's weights times the largest input plus the bias stays below 2^52: every product and
  every partial sum is then an integer float64 represents exactly, so the result does not depend on summation
  order, FMA, threads, BLAS or device. Rescaling divides by a power of two and floors, also exact;
- the index of a scale is the number of scale-table entries below it, compared as exact float64 values of the
  shipped table (`facelab/weights/gaussian_tables.npz`), never recomputed.

The clamp never binds on real faces (the largest activation is far below it); it is there so the argument holds
for any input. The image synthesis g_s stays in floats: it may differ by a level between backends, which moves
pixels, never the bits that follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATION_BITS = 16
"""Fixed-point resolution of the integer network's activations: 2^-16, 0.01% of the smallest scale (0.11)."""

WEIGHT_BITS = 18
"""A layer's largest weight becomes an integer of at most 2^18."""

EXACT_LIMIT = 2.0 ** 52
"""Every intermediate value stays below this: integers up to 2^53 are exact in float64."""


@dataclass(frozen=True)
class IntegerLayer:
    """One convolution as integers: weights (Cout, Cin, k, k) at 2^shift, bias at 2^(ACTIVATION_BITS + shift)."""

    weight: Tensor
    bias: Tensor
    shift: int
    stride: int
    padding: tuple[int, int, int, int]
    relu: bool
    input_limit: float

    def __call__(self, x: Tensor) -> Tensor:
        """(B, Cin, H, W) float64 integers -> (B, Cout, H', W') float64 integers at 2^-ACTIVATION_BITS."""
        x = F.pad(x.clamp(-self.input_limit, self.input_limit), self.padding)
        out_channels, _, kernel, _ = self.weight.shape
        columns = F.unfold(x, kernel, stride=self.stride)
        height = (x.shape[-2] - kernel) // self.stride + 1
        width = (x.shape[-1] - kernel) // self.stride + 1
        total = self.weight.reshape(out_channels, -1) @ columns + self.bias[:, None]
        out = torch.floor((total + 2.0 ** (self.shift - 1)) / 2.0 ** self.shift)
        out = out.reshape(x.shape[0], out_channels, height, width)
        return out.clamp_min(0) if self.relu else out


def integer_layer(weight: Tensor, bias: Tensor, stride: int, padding: tuple[int, int, int, int],
                   relu: bool) -> IntegerLayer:
    """Round a float convolution's weights and bias to integers and derive the input clamp that keeps it exact."""
    weight, bias = weight.detach().double().cpu(), bias.detach().double().cpu()
    largest = weight.abs().max().item()
    shift = WEIGHT_BITS - (math.frexp(largest)[1] if largest > 0 else 0)
    weight_q = torch.round(weight * 2.0 ** shift)
    bias_q = torch.round(bias * 2.0 ** (ACTIVATION_BITS + shift))
    l1 = weight_q.abs().sum(dim=(1, 2, 3)).max().item()
    limit = math.floor((EXACT_LIMIT - bias_q.abs().max().item()) / max(l1, 1.0))
    return IntegerLayer(weight_q, bias_q, shift, stride, padding, relu, float(limit))


def from_conv(conv: nn.Conv2d, relu: bool) -> IntegerLayer:
    """A Conv2d (square kernel, symmetric zero padding) as an `IntegerLayer`."""
    pad = conv.padding[0]
    return integer_layer(conv.weight, conv.bias, conv.stride[0], (pad, pad, pad, pad), relu)


def from_transposed(conv: nn.ConvTranspose2d, relu: bool) -> IntegerLayer:
    """A ConvTranspose2d as zero insertion (done by `IntegerNet`) and a stride-1 convolution with the flipped
    kernel: pad k-1-p before, k-1-p+output_padding after."""
    kernel, pad, extra = conv.kernel_size[0], conv.padding[0], conv.output_padding[0]
    weight = conv.weight.flip(-1, -2).transpose(0, 1)
    before, after = kernel - 1 - pad, kernel - 1 - pad + extra
    return integer_layer(weight, conv.bias, 1, (before, after, before, after), relu)


def insert_zeros(x: Tensor, stride: int) -> Tensor:
    """Spread (B, C, H, W) to (B, C, (H-1)s+1, (W-1)s+1) with zeros between: a transposed convolution's input."""
    if stride == 1:
        return x
    batch, channels, height, width = x.shape
    spread = x.new_zeros(batch, channels, (height - 1) * stride + 1, (width - 1) * stride + 1)
    spread[..., ::stride, ::stride] = x
    return spread


class IntegerNet:
    """A float `nn.Sequential` of Conv2d / ConvTranspose2d / ReLU (CompressAI's h_s) computed exactly in integers."""

    def __init__(self, network: nn.Sequential) -> None:
        modules = list(network)
        self.steps: list[tuple[int, IntegerLayer]] = []
        for index, module in enumerate(modules):
            relu = index + 1 < len(modules) and isinstance(modules[index + 1], nn.ReLU)
            if isinstance(module, nn.ConvTranspose2d):
                self.steps.append((module.stride[0], from_transposed(module, relu)))
            elif isinstance(module, nn.Conv2d):
                self.steps.append((1, from_conv(module, relu)))
            elif not isinstance(module, nn.ReLU):
                raise TypeError(f"IntegerNet computes convolutions and ReLUs, not {type(module).__name__}")

    def __call__(self, x: Tensor) -> Tensor:
        """Float input (any device) -> the output as integers at 2^-ACTIVATION_BITS, float64 on the CPU."""
        value = torch.round(x.detach().to("cpu", torch.float64) * 2.0 ** ACTIVATION_BITS)
        for spread, layer in self.steps:
            value = layer(insert_zeros(value, spread))
        return value

    def largest_input_fraction(self, x: Tensor) -> float:
        """How close the activations for `x` come to the clamps (1.0 = at one): a check that they never bind."""
        value = torch.round(x.detach().to("cpu", torch.float64) * 2.0 ** ACTIVATION_BITS)
        fraction = 0.0
        for spread, layer in self.steps:
            fraction = max(fraction, value.abs().max().item() / layer.input_limit)
            value = layer(insert_zeros(value, spread))
        return fraction


def scale_indexes(scales: Tensor, scale_table: Tensor) -> Tensor:
    """Indexes into the Gaussian coder's tables of fixed-point scales: how many of the table's entries (all but its
    last) lie below each scale, as CompressAI's `build_indexes` counts them, in exact comparisons."""
    thresholds = scale_table[:-1].to("cpu", torch.float64) * 2.0 ** ACTIVATION_BITS
    return torch.bucketize(scales.contiguous(), thresholds).to(torch.int32)
