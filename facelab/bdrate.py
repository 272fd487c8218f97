"""Bjøntegaard delta rate: how many more or fewer bits one codec's rate curve needs than another's at equal quality."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from facelab.errors import FacelabError


def _monotone_curve(rate: np.ndarray, metric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points of a rate curve that raise quality over every cheaper point, sorted by quality."""
    order = np.argsort(rate, kind="stable")
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(metric[order])[:-1]))
    kept = order[metric[order] > best_before]
    return metric[kept], np.log(rate[kept])


def bd_rate(rate_anchor, metric_anchor, rate_test, metric_test) -> float:
    """Bjøntegaard delta rate in %: the test codec's average bitrate change at equal quality.

    log(rate) is interpolated as a function of the metric (PSNR, MS-SSIM in dB, cosine, ...) with a piecewise
    cubic Hermite (PCHIP) curve through each codec's points, not VCEG-M33's single cubic, which swings wildly
    where a metric saturates (cosine near 1); both are integrated over the metric interval the curves share and
    exp(mean difference) - 1 is returned in percent: negative means the test codec saves bits. Points that cost
    more bits for no better quality are dropped. Each curve needs at least 4 points.
    """
    curves = []
    for name, rate, metric in (("anchor", rate_anchor, metric_anchor), ("test", rate_test, metric_test)):
        rate = np.asarray(rate, dtype=np.float64).ravel()
        metric = np.asarray(metric, dtype=np.float64).ravel()
        if rate.shape != metric.shape or len(rate) < 4:
            raise FacelabError(f"BD-rate: the {name} curve needs at least 4 (rate, metric) points of equal count")
        if np.any(rate <= 0) or not np.all(np.isfinite(metric)):
            raise FacelabError(f"BD-rate: the {name} curve needs positive rates and finite metrics")
        curve = _monotone_curve(rate, metric)
        if len(curve[0]) < 2:
            raise FacelabError(f"BD-rate: the {name} curve needs at least 2 points whose quality rises with rate")
        curves.append(curve)
    low = max(metric.min() for metric, _ in curves)
    high = min(metric.max() for metric, _ in curves)
    if not high > low:
        raise FacelabError("BD-rate: the two curves do not overlap in quality")
    anchor, test = (PchipInterpolator(metric, log_rate).integrate(low, high) for metric, log_rate in curves)
    return float((np.exp((test - anchor) / (high - low)) - 1.0) * 100.0)


def bd_rate_interval(rate_anchor, metric_anchor, rate_test, metric_test, draws: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval for bd_rate over the images, from per-image values (images x points, as per_image.csv).

    Each draw resamples the images with replacement, the same ones for both curves (they code the same faces),
    averages each point's rate and metric over them and takes bd_rate of those means; the interval holds `level`
    of the draws. It says how much the answer depends on which faces were sampled, not on the training runs.
    """
    arrays = [np.asarray(values, dtype=np.float64) for values in (rate_anchor, metric_anchor, rate_test, metric_test)]
    images = arrays[0].shape[0]
    if any(array.ndim != 2 or array.shape[0] != images for array in arrays) or images < 2:
        raise FacelabError("BD-rate interval: give images x points arrays, with the same images (at least 2) in each")
    if not all(np.all(np.isfinite(array)) for array in arrays):
        raise FacelabError("BD-rate interval: every per-image rate and metric must be finite")
    generator = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        weights = generator.multinomial(images, np.full(images, 1.0 / images)) / images
        values.append(bd_rate(*(weights @ array for array in arrays)))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
