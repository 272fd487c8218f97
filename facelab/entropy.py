"""facelab's context-adaptive arithmetic coder for binary codes (coder "context", beyond the paper).

Each bit is predicted from the bits of the earlier channels at the same position by a ridge
least-squares regression that encoder and decoder refit from everything decoded so far
(positions are coded coarse-to-fine in doubling phases, channels in order within a phase); the
regression output and the already-decoded 4-neighbours of the same channel select an adaptive
Krichevsky-Trofimov counter, and a range coder (`constriction`) codes the bit with it.
It beats LZMA because the 128 bits at a position are signs of 128 projections of only 64
features, so they are strongly dependent, and LZMA's byte-string matching cannot see that.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import constriction
import numpy as np

from facelab.errors import BitstreamError

FIRST_PHASE = 8
"""Positions in the first phase; each later phase doubles the positions decoded so far."""
RIDGE = 32.0
"""Ridge penalty on each channel's regression weights (in units of squared +-1 bits)."""
FRACTION_BITS = 12
"""Fixed-point precision of the regression: values are integers scaled by 2**FRACTION_BITS."""
PREDICTION_BINS = 16
"""Bins of the regression output in [-1, 1], one axis of the counter table."""
NEIGHBOUR_SUMS = 9
"""Sum of the four same-channel neighbours already decoded, -4..4: the other axis."""
_ONE = float(1 << FRACTION_BITS)
_MAX_WEIGHT = float(1 << (FRACTION_BITS + 4))
_MAX_PREDICTION = 4 * _ONE
_CRC_BYTES = 2


def coding_order(height: int, width: int) -> np.ndarray:
    """Positions (raster indices) coarse to fine: the 32x32 grid first, then 16x16, ..., then all.

    Within a level the positions are scrambled by a fixed integer hash, so that every phase
    samples the whole image and later positions have already-decoded neighbours.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    level = np.zeros((height, width), np.int64)
    for shift in range(1, 16):
        step = 1 << shift
        level += ((yy % step == 0) & (xx % step == 0)).astype(np.int64)
    raster = np.arange(height * width, dtype=np.uint64)
    scramble = (raster * np.uint64(2654435761)) % np.uint64(1 << 32)
    return np.lexsort((scramble, -level.ravel())).astype(np.int64)


def phase_bounds(count: int) -> list[int]:
    """End of each phase in the coding order: 8, 16, 32, ... positions, the last one `count`."""
    bounds, end = [], FIRST_PHASE
    while end < count:
        bounds.append(end)
        end *= 2
    return bounds + [count] if count else []


def neighbour_table(order: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n, 4) rank in the coding order of each position's 4-neighbours; n (a 'never') off the image."""
    count = height * width
    rank = np.empty(count, np.int64)
    rank[order] = np.arange(count)
    yy, xx = np.divmod(order, width)
    table = np.full((count, 4), count, np.int64)
    for k, (dy, dx) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
        ny, nx = yy + dy, xx + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        table[inside, k] = rank[ny[inside] * width + nx[inside]]
    return table


def unit_ldl(gram: np.ndarray) -> np.ndarray:
    """Unit lower-triangular L of gram = L D L^T, by elimination with element-wise IEEE operations only.

    No BLAS reduction is involved, so every platform computes the same bits, which keeps a
    decoder on another machine in lockstep with the encoder.
    """
    work = gram.copy()
    size = len(work)
    lower = np.eye(size)
    for k in range(size - 1):
        column = work[k + 1:, k] / work[k, k]
        lower[k + 1:, k] = column
        work[k + 1:, k + 1:] -= np.multiply.outer(column, work[k, k + 1:])
    return lower


@dataclass
class _Phase:
    """The positions of one phase and what its steps need about them."""

    start: int
    stop: int
    weights: np.ndarray        # (C + 1, C + 1) fixed-point unit-lower regression factor
    neighbours: np.ndarray     # (stop - start, 4) ranks, pointing at the zero column when not yet decoded


class _ContextModel:
    """The probability model shared by encoder and decoder; both call it in the same order.

    State: `values` (C, n + 1) holds +-1 for decoded bits in coding order (0 = unknown; the last
    column stays 0 for 'no neighbour'); `innovations` (n, C + 1) holds the fixed-point residuals
    of the regression (column 0 is the constant term); `zeros`/`ones` are the shared counters.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.channels, height, width = shape
        self.count = height * width
        self.order = coding_order(height, width)
        self.neighbours = neighbour_table(self.order, height, width)
        self.values = np.zeros((self.channels, self.count + 1))
        self.innovations = np.zeros((self.count, self.channels + 1))
        self.innovations[:, 0] = _ONE
        self.gram = np.diag(np.full(self.channels + 1, RIDGE))
        self.gram[0, 0] = 1.0
        self.zeros = np.zeros(PREDICTION_BINS * NEIGHBOUR_SUMS)
        self.ones = np.zeros(PREDICTION_BINS * NEIGHBOUR_SUMS)
        self.p_one = np.full(PREDICTION_BINS * NEIGHBOUR_SUMS, 0.5)

    def phases(self):
        """Yield each phase after refitting the regression on every position decoded before it."""
        start = 0
        for stop in phase_bounds(self.count):
            weights = np.clip(np.rint(unit_ldl(self.gram) * _ONE), -_MAX_WEIGHT, _MAX_WEIGHT)
            neighbours = self.neighbours[start:stop]
            neighbours = np.where(neighbours < start, neighbours, self.count)
            yield _Phase(start, stop, weights, neighbours)
            if stop < self.count:
                self._add_to_gram(self.values[:, start:stop])
            start = stop

    def _add_to_gram(self, decoded: np.ndarray) -> None:
        """gram += z z^T over the decoded positions, z = (1, bits): exact integer sums, row by row."""
        self.gram[0, 0] += decoded.shape[1]
        sums = decoded.sum(axis=1)
        self.gram[0, 1:] += sums
        self.gram[1:, 0] += sums
        for channel, row in enumerate(decoded):
            self.gram[channel + 1, 1:] += decoded @ row

    def probabilities(self, phase: _Phase, channel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(bit = 1) for `channel` at the phase's positions, with the context and prediction used."""
        known = self.innovations[phase.start:phase.stop, : channel + 1]
        prediction = np.floor(known @ phase.weights[channel + 1, : channel + 1] * (1 / _ONE))
        np.clip(prediction, -_MAX_PREDICTION, _MAX_PREDICTION, out=prediction)
        around = self.values[channel][phase.neighbours].sum(axis=1)
        context = _LEVEL_CONTEXT[(prediction + _MAX_PREDICTION).astype(np.intp)] + around.astype(np.intp)
        return self.p_one[context], context, prediction

    def commit(self, phase: _Phase, channel: int, bits: np.ndarray, context: np.ndarray,
               prediction: np.ndarray) -> None:
        """Record the coded bits: counters, decoded values and regression residuals."""
        counts = np.bincount(2 * context + bits, minlength=2 * len(self.ones))
        self.zeros += counts[0::2]
        self.ones += counts[1::2]
        self.p_one = (2 * self.ones + 1) / (2 * (self.zeros + self.ones) + 2)
        signed = 2.0 * bits - 1.0
        self.values[channel, phase.start:phase.stop] = signed
        self.innovations[phase.start:phase.stop, channel + 1] = signed * _ONE - prediction


def _level_context() -> np.ndarray:
    """Counter-table row offset for each integer prediction in [-4, 4] * 2**FRACTION_BITS."""
    prediction = np.arange(-_MAX_PREDICTION, _MAX_PREDICTION + 1)
    level = np.floor((prediction + _ONE) * (PREDICTION_BINS / (2 * _ONE)))
    level = np.clip(level, 0, PREDICTION_BINS - 1).astype(np.intp)
    return level * NEIGHBOUR_SUMS + NEIGHBOUR_SUMS // 2


_LEVEL_CONTEXT = _level_context()


def _family() -> object:
    return constriction.stream.model.Bernoulli(perfect=False)


def encode_bits(bits: np.ndarray) -> bytes:
    """(C, h, w) bool code -> self-delimiting payload (a 2-byte CRC, then the range-coded bits)."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 3:
        raise ValueError(f"expected a (C, h, w) code, got shape {bits.shape}")
    channels, height, width = bits.shape
    model = _ContextModel(bits.shape)
    in_order = bits.reshape(channels, -1)[:, model.order].astype(np.int32)
    encoder = constriction.stream.queue.RangeEncoder()
    family = _family()
    for phase in model.phases():
        for channel in range(channels):
            symbols = in_order[channel, phase.start:phase.stop]
            p_one, context, prediction = model.probabilities(phase, channel)
            encoder.encode(symbols, family, p_one)
            model.commit(phase, channel, symbols, context, prediction)
    coded = _trim(encoder.get_compressed())
    return binascii.crc_hqx(coded, 0).to_bytes(_CRC_BYTES, "big") + coded


def decode_bits(payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of `encode_bits`: payload -> (C, h, w) bool; BitstreamError if it is damaged."""
    channels, height, width = (int(size) for size in shape)
    if min(channels, height, width) < 0:
        raise BitstreamError(f"invalid code shape {tuple(shape)}")
    if len(payload) < _CRC_BYTES:
        raise BitstreamError(f"truncated code: {len(payload)} bytes is shorter than its {_CRC_BYTES}-byte checksum")
    coded = bytes(payload[_CRC_BYTES:])
    if binascii.crc_hqx(coded, 0) != int.from_bytes(payload[:_CRC_BYTES], "big"):
        raise BitstreamError("corrupt or truncated code: checksum mismatch")
    model = _ContextModel((channels, height, width))
    in_order = np.zeros((channels, height * width), dtype=bool)
    try:
        decoder = constriction.stream.queue.RangeDecoder(_untrim(coded))
        family = _family()
        for phase in model.phases():
            for channel in range(channels):
                p_one, context, prediction = model.probabilities(phase, channel)
                symbols = decoder.decode(family, p_one)
                model.commit(phase, channel, symbols, context, prediction)
                in_order[channel, phase.start:phase.stop] = symbols
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise BitstreamError(f"corrupt code: the range decoder failed ({exc})") from None
    bits = np.zeros((channels, height * width), dtype=bool)
    bits[:, model.order] = in_order
    return bits.reshape(channels, height, width)


def _trim(words: np.ndarray) -> bytes:
    """Range-coder words -> bytes, dropping up to 3 trailing zero bytes of the last word."""
    data = words.astype("<u4").tobytes()
    keep = len(data)
    while keep > len(data) - 3 and keep > 0 and data[keep - 1] == 0:
        keep -= 1
    return data[:keep]


def _untrim(data: bytes) -> np.ndarray:
    """Inverse of `_trim`: pad to whole 32-bit words."""
    data += b"\0" * (-len(data) % 4)
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)
