"""A learned probability for every bit of the paper's binary code (issue 29), trainable and then exact.

The paper's code (128 x H/8 x W/8 bits) is stored as it comes; its loss has no rate term. Following Mentzer et al.
("Conditional Probability Models for Deep Image Compression", CVPR 2018), `BitModel` gives each bit a probability
from bits already coded, so that its cross-entropy is the rate a range coder reaches and can sit in the loss.
Its context is causal over channels and, within a channel group, over a checkerboard:

- the 128 channels form GROUPS groups, coded one after another; a bit sees every channel of the earlier groups
  in the 3x3 neighbourhood of its position (the strongest dependence: the 128 bits at a position are signs of 128
  projections of the same 64 features);
- within a group, the positions with (y + x) even are coded first, the others second, and these see their own
  group's first-pass bits at their four horizontal and vertical neighbours.

One masked 3x3 convolution, then two grouped 1x1 convolutions, give all logits at once in training; decoding takes
2 x GROUPS passes over the whole map, each a few small matrix products.

Exactness: `IntegerBitModel` computes the same network in integers with `facelab.exact`'s layers (weights at a
power-of-two scale, float64 sums of integers below 2^52, floor rescaling), so encoder and decoder reach the same
integer logit on any machine, thread count or backend; the logit picks a 16-bit probability from a table kept in
the model's weights (`probability_table`), never recomputed from floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelab.exact import ACTIVATION_BITS, IntegerLayer, integer_layer

GROUPS = 8
"""Channel groups coded one after another: 16 decoding passes over the map for a 128-channel code."""

HIDDEN = 32
"""Hidden features per group."""

LOGIT_STEPS = 16
"""Probability-table buckets per unit of logit: quantising a logit by 1/16 costs under 1e-4 bits a bit."""

LOGIT_LIMIT = 16
"""Logits are clipped to +-16 (probabilities 1e-7 from certainty) before the table look-up."""

PROBABILITY_BITS = 16
"""The coder's probabilities are multiples of 2^-16, between 2^-16 and 1 - 2^-16."""

_CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
_CENTRE = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])


def first_pass(height: int, width: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
               ) -> Tensor:
    """(height, width) checkerboard: 1 where (y + x) is even (coded first within a group), else 0."""
    yy = torch.arange(height, device=device)[:, None]
    xx = torch.arange(width, device=device)[None, :]
    return ((yy + xx) % 2 == 0).to(dtype)


def context_mask(channels: int, groups: int, hidden: int) -> Tensor:
    """(groups * hidden, 2 * channels + 1, 3, 3) mask of the first convolution: hidden block g sees all earlier
    groups (3x3), its own group's first-pass bits at the cross, and the second-pass indicator at the centre."""
    size = channels // groups
    mask = torch.zeros(groups * hidden, 2 * channels + 1, 3, 3)
    for group in range(groups):
        rows = slice(group * hidden, (group + 1) * hidden)
        mask[rows, : group * size] = 1.0
        mask[rows, channels + group * size: channels + (group + 1) * size] = _CROSS
        mask[rows, 2 * channels] = _CENTRE
    return mask


def seen_inputs(weight: Tensor, own: slice, channels: int) -> Tensor:
    """A group's rows of the masked first-layer weight, cut to the inputs it sees: the earlier groups' channels,
    its own first-pass channels, the second-pass indicator."""
    return torch.cat([weight[:, : own.start], weight[:, channels + own.start: channels + own.stop],
                      weight[:, 2 * channels:]], dim=1)


def probability_table() -> Tensor:
    """P(bit = +1) in units of 2^-16 for each logit bucket: round(2^16 sigmoid(centre)), kept off 0 and 2^16."""
    buckets = torch.arange(-LOGIT_LIMIT * LOGIT_STEPS, LOGIT_LIMIT * LOGIT_STEPS, dtype=torch.float64)
    scale = 2.0 ** PROBABILITY_BITS
    return torch.round(torch.sigmoid((buckets + 0.5) / LOGIT_STEPS) * scale).clamp(1, scale - 1).to(torch.int32)


class BitModel(nn.Module):
    """Logits of P(bit = +1) for a (B, C, h, w) code of +-1, each from bits coded before it (see the module doc)."""

    def __init__(self, channels: int = 128, groups: int = GROUPS, hidden: int = HIDDEN) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} code channels do not split into {groups} groups")
        self.channels, self.groups, self.hidden = channels, groups, hidden
        self.context = nn.Conv2d(2 * channels + 1, groups * hidden, 3, padding=1)
        self.mix = nn.Conv2d(groups * hidden, groups * hidden, 1, groups=groups)
        self.out = nn.Conv2d(groups * hidden, channels, 1, groups=groups)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("mask", context_mask(channels, groups, hidden), persistent=False)
        self.register_buffer("probability_table", probability_table())
        self.register_state_dict_post_hook(_pack_context)
        self.register_load_state_dict_pre_hook(_unpack_context)

    def logits(self, code: Tensor) -> Tensor:
        """(B, C, h, w) logits of P(bit = +1), in fp32; each group's first layer reads only what it may see."""
        code = code.float()
        first = first_pass(*code.shape[-2:], code.device, code.dtype)
        second = (1 - first).expand(code.shape[0], 1, *first.shape)
        weight = self.context.weight * self.mask
        hidden = []
        for rows, own in self.group_slices():
            seen = seen_inputs(weight[rows], own, self.channels)
            x = torch.cat([code[:, : own.start], code[:, own] * first, second], dim=1)
            hidden.append(F.conv2d(x, seen, self.context.bias[rows], padding=1))
        return self.out(F.relu(self.mix(F.relu(torch.cat(hidden, dim=1)))))

    def group_slices(self) -> list[tuple[slice, slice]]:
        """Per group: its rows of hidden features and its code channels."""
        size = self.channels // self.groups
        return [(slice(g * self.hidden, (g + 1) * self.hidden), slice(g * size, (g + 1) * size))
                for g in range(self.groups)]

    def bits(self, code: Tensor) -> Tensor:
        """(B,) cross-entropy of each code under the model, in bits: the rate a range coder reaches."""
        with torch.autocast(code.device.type, enabled=False):
            cost = F.softplus(-code.float() * self.logits(code))
        return cost.flatten(1).sum(1) / math.log(2)


def _pack_context(model: BitModel, state: dict, prefix: str, metadata: dict) -> None:
    """Store only the first layer's live weights (a quarter of them: the rest are masked out and never used), so a
    checkpoint holds 0.6 MB instead of 2.4 MB; the weights a coder computes with are unchanged."""
    key = f"{prefix}context.weight"
    if key in state:
        state[key] = state[key][model.mask.bool()]


def _unpack_context(model: BitModel, state: dict, prefix: str, *_: object) -> None:
    """Undo `_pack_context`: the live weights back in place, zeros where the mask cuts; a full weight is kept."""
    key = f"{prefix}context.weight"
    packed = state.get(key)
    live = model.mask.bool()
    if packed is not None and packed.dim() == 1 and packed.numel() == int(live.sum()):
        weight = torch.zeros(live.shape, dtype=packed.dtype, device=packed.device)
        weight[live] = packed
        state[key] = weight


@dataclass(frozen=True)
class GroupLayers:
    """One channel group's three layers in integers, its input restricted to the channels it sees."""

    context: IntegerLayer
    mix: IntegerLayer
    out: IntegerLayer


class IntegerBitModel:
    """`BitModel` in exact integer arithmetic: the logits and probabilities a coder uses, equal on every machine."""

    def __init__(self, model: BitModel) -> None:
        self.channels, self.groups = model.channels, model.groups
        self.size = model.channels // model.groups
        self.table = model.probability_table.detach().cpu().double() / 2.0 ** PROBABILITY_BITS
        weight = (model.context.weight * model.mask).detach()
        self.layers = [GroupLayers(
            integer_layer(seen_inputs(weight[rows], own, model.channels), model.context.bias[rows], 1,
                          (1, 1, 1, 1), relu=True),
            integer_layer(model.mix.weight[rows], model.mix.bias[rows], 1, (0, 0, 0, 0), relu=True),
            integer_layer(model.out.weight[own], model.out.bias[own], 1, (0, 0, 0, 0), relu=False))
            for rows, own in model.group_slices()]

    def group_logits(self, known: Tensor, group: int) -> Tensor:
        """(size, h, w) integer logits at 2^-ACTIVATION_BITS of `group`'s bits, from `known` (C, h, w): +-1 where a
        bit is decoded, anything elsewhere. Only earlier groups and the group's own first-pass bits are read."""
        own = slice(group * self.size, (group + 1) * self.size)
        first = first_pass(*known.shape[-2:], dtype=torch.float64)
        x = torch.cat([known[: own.start], known[own] * first, (1 - first)[None]]).double() * 2.0 ** ACTIVATION_BITS
        layers = self.layers[group]
        return layers.out(layers.mix(layers.context(x[None])))[0]

    def probabilities(self, logits: Tensor) -> Tensor:
        """P(bit = +1) for integer logits: the table's entry for the logit's 1/LOGIT_STEPS bucket (exact floats)."""
        bucket = torch.floor(logits / 2.0 ** (ACTIVATION_BITS - math.log2(LOGIT_STEPS)))
        index = bucket.clamp(-LOGIT_LIMIT * LOGIT_STEPS, LOGIT_LIMIT * LOGIT_STEPS - 1) + LOGIT_LIMIT * LOGIT_STEPS
        return self.table[index.long()]


def coding_passes(groups: int, height: int, width: int) -> list[tuple[int, Tensor]]:
    """The decoding order: (group, (h, w) bool mask of the positions of the pass), first then second pass per group."""
    first = first_pass(height, width).bool()
    return [(group, positions) for group in range(groups) for positions in (first, ~first)]
