"""facelab's context-adaptive arithmetic coder for binary codes (coder "context", beyond the paper).

Positions are coded coarse to fine in doubling phases, channel after channel within a phase; each
bit is predicted from the bits of all earlier channels at its position by a ridge least-squares
regression that encoder and decoder refit, in exact fixed-point arithmetic, on everything decoded
before the phase. That prediction (16 bins) and the sum of the bit's four already-decoded
interpolation neighbours in its own channel pick one of 144 Krichevsky-Trofimov counters shared by
all channels, whose probability drives a range coder (`constriction`). It beats LZMA because the
128 bits at a position are signs of 128 projections of the same 64 features, so most of each bit
is predictable from the others, a dependence that LZMA's byte-string matching cannot see.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
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
"""Sum of the bit's four interpolation neighbours in its channel (+-1 each, 0 off the image): the other axis."""
_ONE = float(1 << FRACTION_BITS)
_MAX_WEIGHT = float(1 << (FRACTION_BITS + 4))
_MAX_PREDICTION = 4 * _ONE
_CRC_BYTES = 2
_DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _scales(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per raster position: its scale s (both coordinates multiples of 2**s) and whether it is an 'edge'.

    A 'centre' of scale s has both coordinates odd multiples of 2**s, an 'edge' only one.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    y_zeros, x_zeros = _trailing_zeros(yy.ravel()), _trailing_zeros(xx.ravel())
    return np.minimum(y_zeros, x_zeros), y_zeros != x_zeros


def _trailing_zeros(values: np.ndarray) -> np.ndarray:
    """Trailing zero bits of each value, with 0 counted as 31 (a multiple of everything)."""
    zeros = np.zeros(values.shape, np.int64)
    for shift in range(1, 32):
        zeros += (values % (1 << shift) == 0).astype(np.int64)
    return zeros


def coding_order(height: int, width: int) -> np.ndarray:
    """Positions (raster indices) coarse to fine, as in hierarchical interpolation.

    Scales go from coarse to fine, and within a scale the centres come before the edges, so
    that every position's four interpolation neighbours (see `neighbour_table`) come before it.
    Ties are broken by a fixed integer hash, so that a phase samples the whole image.
    """
    scale, edge = _scales(height, width)
    raster = np.arange(height * width, dtype=np.uint64)
    scramble = (raster * np.uint64(2654435761)) % np.uint64(1 << 32)
    return np.lexsort((scramble, edge, -scale)).astype(np.int64)


def phase_bounds(count: int) -> list[int]:
    """End of each phase in the coding order, refitting where most bits are.

    8, 16, 32, ... positions, doubling up to a quarter of them, then 3/8, 1/2, 3/4 and all.
    """
    ends, end = [], FIRST_PHASE
    while end < count // 4:
        ends.append(end)
        end *= 2
    ends += [count // 4, 3 * count // 8, count // 2, 3 * count // 4, count]
    return sorted({end for end in ends if 0 < end <= count})


def neighbour_table(order: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n, 4) coding-order ranks of each position's interpolation neighbours; n where off the image.

    A centre of scale s has its four diagonal neighbours at distance 2**s, an edge its four
    horizontal and vertical ones: all of a coarser scale, or centres of the same scale.
    """
    count = height * width
    rank = np.empty(count, np.int64)
    rank[order] = np.arange(count)
    scale, edge = _scales(height, width)
    scale, edge = scale[order], edge[order]
    step = np.left_shift(1, np.minimum(scale, 30))
    yy, xx = np.divmod(order, width)
    table = np.full((count, 4), count, np.int64)
    for k, ((dy, dx), (ey, ex)) in enumerate(zip(_DIAGONAL, _CROSS)):
        ny = yy + step * np.where(edge, ey, dy)
        nx = xx + step * np.where(edge, ex, dx)
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        table[inside, k] = rank[ny[inside] * width + nx[inside]]
    return table


def unit_ldl(gram: np.ndarray) -> np.ndarray:
    """Unit lower-triangular L of gram = L D L^T, by elimination with element-wise IEEE operations only.

    No BLAS reduction is involved, so every platform computes the same bits, which keeps a
    decoder on another machine in lockstep with the encoder. Single precision is plenty: L is
    rounded to FRACTION_BITS afterwards.
    """
    work = gram.astype(np.float32)
    size = len(work)
    lower = np.eye(size, dtype=np.float32)
    update = np.empty(size * size, np.float32)
    for k in range(size - 1):
        column = work[k + 1:, k] / work[k, k]
        lower[k + 1:, k] = column
        rest = update[: (size - k - 1) ** 2].reshape(size - k - 1, size - k - 1)
        np.multiply.outer(column, work[k, k + 1:], out=rest)
        work[k + 1:, k + 1:] -= rest
    return lower.astype(np.float64)


@dataclass
class _Phase:
    """The positions of one phase and what its steps need about them."""

    start: int
    stop: int
    weights: np.ndarray        # (C + 1, C + 1) unit-lower regression factor, rounded to FRACTION_BITS
    neighbours: np.ndarray     # (stop - start, 4) ranks, pointing at the zero column when not yet decoded


class _ContextModel:
    """The probability model shared by encoder and decoder; both call it in the same order.

    State: `values` (C, n + 1) holds +-1 for decoded bits in coding order (0 = unknown; the last
    column stays 0 for 'no neighbour'); `innovations` (n, C + 1) holds the fixed-point residuals
    of the regression (column 0 is the constant term); `ones`/`totals` are the shared KT counters
    (ones + 1/2, seen + 1 per context).
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
        self.ones = np.full(PREDICTION_BINS * NEIGHBOUR_SUMS, 0.5)
        self.totals = np.full(PREDICTION_BINS * NEIGHBOUR_SUMS, 1.0)
        self.p_one = self.ones / self.totals

    def phases(self):
        """Yield each phase after refitting the regression on every position decoded before it."""
        start = 0
        for stop in phase_bounds(self.count):
            weights = np.clip(np.rint(unit_ldl(self.gram) * _ONE), -_MAX_WEIGHT, _MAX_WEIGHT) / _ONE
            weights[:, 0] += _MAX_PREDICTION / _ONE
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
        """P(bit = 1) for `channel` at the phase's positions, with the context and prediction used.

        The prediction is floor(innovations . weights), clipped to +-4 and returned offset by +4 as
        an index (the offset rides on the constant term's weight). Innovations are integers and
        weights multiples of 2**-FRACTION_BITS, small enough that float64 sums them exactly in any
        order, so every platform agrees.
        """
        known = self.innovations[phase.start:phase.stop, : channel + 1]
        shifted = known @ phase.weights[channel + 1, : channel + 1]
        np.maximum(shifted, 0, out=shifted)
        np.minimum(shifted, 2 * _MAX_PREDICTION, out=shifted)
        index = shifted.astype(np.intp)
        around = (self.values[channel][phase.neighbours] @ _FOUR_ONES).astype(np.intp)
        context = _LEVEL_CONTEXT[index] + around
        return self.p_one[context], context, index

    def commit(self, phase: _Phase, channel: int, bits: np.ndarray, context: np.ndarray,
               index: np.ndarray) -> None:
        """Record the coded bits: counters, decoded values and regression residuals."""
        self.ones += np.bincount(context, weights=bits, minlength=len(self.ones))
        self.totals += np.bincount(context, minlength=len(self.totals))
        self.p_one = self.ones / self.totals
        self.values[channel, phase.start:phase.stop] = _SIGN[bits]
        self.innovations[phase.start:phase.stop, channel + 1] = _SIGN_SHIFTED[bits] - index


def _level_context() -> np.ndarray:
    """Counter-table row offset for each integer prediction in [-4, 4] * 2**FRACTION_BITS."""
    prediction = np.arange(-_MAX_PREDICTION, _MAX_PREDICTION + 1)
    level = np.floor((prediction + _ONE) * (PREDICTION_BINS / (2 * _ONE)))
    level = np.clip(level, 0, PREDICTION_BINS - 1).astype(np.intp)
    return level * NEIGHBOUR_SUMS + NEIGHBOUR_SUMS // 2


_LEVEL_CONTEXT = _level_context()
_FOUR_ONES = np.ones(4)
_SIGN = np.array([-1.0, 1.0])
_SIGN_SHIFTED = _SIGN * _ONE + _MAX_PREDICTION


def bernoulli_family() -> object:
    """constriction's model of one bit, parametrised by P(bit = 1)."""
    return constriction.stream.model.Bernoulli(perfect=False)


def _as_code(bits: np.ndarray) -> np.ndarray:
    """A (C, h, w) bool array, or ValueError."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 3:
        raise ValueError(f"expected a (C, h, w) code, got shape {bits.shape}")
    return bits


def _coding_steps(bits: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """Run the context model over a (C, h, w) bool code in coding order, as the encoder does.

    Yields, per phase and channel, one value per bit: its channel, raster position, the bit (0/1),
    P(bit = 1) and the counter (context) it was coded with.
    """
    channels, height, width = bits.shape
    model = _ContextModel(bits.shape)
    in_order = bits.reshape(channels, height * width)[:, model.order].astype(np.int32)
    for phase in model.phases():
        for channel in range(channels):
            step = in_order[channel, phase.start:phase.stop]
            p_one, context, index = model.probabilities(phase, channel)
            model.commit(phase, channel, step, context, index)
            positions = model.order[phase.start:phase.stop]
            yield np.full(len(positions), channel), positions, step, p_one, context


@dataclass(frozen=True)
class CodingTrace:
    """Every bit of a code in the order the context coder codes it, with what it was coded with.

    `context` is the counter used: prediction bin * NEIGHBOUR_SUMS + neighbour sum + NEIGHBOUR_SUMS // 2.
    """

    channel: np.ndarray    # (N,) channel of each bit
    position: np.ndarray   # (N,) raster index y * w + x of each bit
    bit: np.ndarray        # (N,) the bit, 0 or 1
    p_one: np.ndarray      # (N,) the adaptive probability P(bit = 1) it was coded with
    context: np.ndarray    # (N,) the counter that gave p_one

    @property
    def prediction_bin(self) -> np.ndarray:
        """The regression's prediction from earlier channels, binned: 0 (surely 0) to PREDICTION_BINS - 1 (surely 1)."""
        return self.context // NEIGHBOUR_SUMS

    @property
    def neighbour_sum(self) -> np.ndarray:
        """Sum of the bit's four interpolation neighbours in its channel, +-1 each, 0 if not yet coded: -4 to 4."""
        return self.context % NEIGHBOUR_SUMS - NEIGHBOUR_SUMS // 2

    @property
    def cost(self) -> np.ndarray:
        """What each bit costs an ideal arithmetic coder: -log2 of the probability given to its value, in bits."""
        return -np.log2(np.where(self.bit == 1, self.p_one, 1 - self.p_one))


def coding_trace(bits: np.ndarray) -> CodingTrace:
    """(C, h, w) bool code -> its `CodingTrace`: the per-bit contexts and probabilities `encode_bits` codes with.

    The costs sum to the payload's size to within the range coder's rounding and the checksum.
    """
    steps = list(_coding_steps(_as_code(bits)))
    if not steps:
        none = np.zeros(0, np.int64)
        return CodingTrace(none, none, none, none.astype(float), none)
    return CodingTrace(*(np.concatenate(column) for column in zip(*steps)))


def encode_bits(bits: np.ndarray) -> bytes:
    """(C, h, w) bool code -> self-delimiting payload (a 2-byte CRC, then the range-coded bits)."""
    symbols, probabilities = [], []
    for _, _, step, p_one, _ in _coding_steps(_as_code(bits)):
        symbols.append(step)
        probabilities.append(p_one)
    encoder = constriction.stream.queue.RangeEncoder()
    if symbols:
        encoder.encode(np.concatenate(symbols), bernoulli_family(), np.concatenate(probabilities))
    coded = words_to_bytes(encoder.get_compressed())
    return _checksum(coded) + coded


def decode_bits(payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of `encode_bits`: payload -> (C, h, w) bool; BitstreamError if it is damaged."""
    channels, height, width = (int(size) for size in shape)
    if min(channels, height, width) < 0:
        raise BitstreamError(f"invalid code shape {tuple(shape)}")
    if len(payload) < _CRC_BYTES:
        raise BitstreamError(f"truncated code: {len(payload)} bytes is shorter than its {_CRC_BYTES}-byte checksum")
    coded = bytes(payload[_CRC_BYTES:])
    if _checksum(coded) != payload[:_CRC_BYTES]:
        raise BitstreamError("corrupt or truncated code: checksum mismatch")
    if not coded and channels * height * width:
        raise BitstreamError("truncated code: no coded bits after the checksum")
    model = _ContextModel((channels, height, width))
    in_order = np.zeros((channels, height * width), dtype=bool)
    try:
        decoder = constriction.stream.queue.RangeDecoder(bytes_to_words(coded))
        family = bernoulli_family()
        for phase in model.phases():
            for channel in range(channels):
                p_one, context, index = model.probabilities(phase, channel)
                symbols = decoder.decode(family, p_one)
                model.commit(phase, channel, symbols, context, index)
                in_order[channel, phase.start:phase.stop] = symbols
        exhausted = decoder.maybe_exhausted()
    except Exception as exc:  # constriction reports damaged input with assorted exception types
        raise BitstreamError(f"corrupt code: the range decoder failed ({type(exc).__name__})") from None
    if not exhausted:
        raise BitstreamError("corrupt code: data left over after the last bit")
    bits = np.zeros((channels, height * width), dtype=bool)
    bits[:, model.order] = in_order
    return bits.reshape(channels, height, width)


def _checksum(coded: bytes) -> bytes:
    """CRC-16-CCITT (initial value 0xFFFF, so that runs of zero bytes do not checksum to zero)."""
    return binascii.crc_hqx(coded, 0xFFFF).to_bytes(_CRC_BYTES, "big")


def words_to_bytes(words: np.ndarray) -> bytes:
    """Range-coder words -> bytes, dropping up to 3 trailing zero bytes of the last word."""
    data = words.astype("<u4").tobytes()
    keep = len(data)
    while keep > len(data) - 3 and keep > 0 and data[keep - 1] == 0:
        keep -= 1
    return data[:keep]


def bytes_to_words(data: bytes) -> np.ndarray:
    """Inverse of `words_to_bytes`: pad to whole 32-bit words."""
    data += b"\0" * (-len(data) % 4)
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)
