"""The evaluation's scored rows as types: a metric summarised over the images, and one (method, coder) row.

Tables, plots, BD-rate and the lessons read these by attribute; results.json holds them as dicts
(`Score.to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from facelab.metrics import summary


def _finite(value: float) -> float | None:
    """A float for JSON: None for nan / inf."""
    return float(value) if math.isfinite(value) else None


def binomial_se(accuracy: float | None, count: int) -> float | None:
    """The sampling error (one standard error) of an accuracy measured on `count` independent trials."""
    if accuracy is None or count < 1:
        return None
    return math.sqrt(accuracy * (1 - accuracy) / count)


@dataclass(frozen=True)
class Summary:
    """A metric over the images: the paper's average, maximum and minimum, and the average's standard error
    (its sampling error at this many images). None stands for an infinite or undefined value (a lossless PSNR)."""

    mean: float | None
    max: float | None
    min: float | None
    se: float | None = None

    @classmethod
    def of(cls, values: np.ndarray) -> Summary:
        """The summary of per-image values; the standard error counts only the finite ones."""
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        se = float(finite.std(ddof=1) / math.sqrt(finite.size)) if finite.size > 1 else None
        return cls(**{name: _finite(value) for name, value in summary(values).items()}, se=se)


@dataclass(frozen=True)
class Score:
    """Every number of one (method, coder) row of a table or one point of a curve.

    `model` is the facelab model's label (None for a classic codec or the originals), `curve` and `scale`
    are set on curve points. Accuracies carry their sampling errors: the 1-NN ones binomial over the
    probes scored, the pairs one the folds' sample standard deviation over sqrt(folds). The `judge_` fields are the
    same face scores by the judge (`facelab.judge`), its similarity being 1 - the distance of its descriptors; None
    where a row was scored without it.
    """

    method: str
    family: str
    coder: str
    images: int
    bytes: int
    mb: float
    bpp: Summary
    ratio_raw: Summary
    ratio_file: Summary
    psnr: Summary
    ms_ssim: Summary
    quality: Summary | None
    cosine: float
    cosine_se: float | None
    not_detected: int
    nn_accuracy: float | None
    nn_accuracy_strict: float | None
    nn_strict_scored: int
    pairs_accuracy: float | None
    pairs_std: float | None
    pairs_se: float | None
    pairs: int
    judge_similarity: float | None = None
    judge_similarity_se: float | None = None
    judge_nn_accuracy: float | None = None
    judge_nn_accuracy_strict: float | None = None
    judge_nn_strict_scored: int = 0
    judge_pairs_accuracy: float | None = None
    judge_pairs_std: float | None = None
    judge_pairs_se: float | None = None
    model: str | None = None
    curve: str | None = None
    scale: float | None = None

    @property
    def nn_se(self) -> float | None:
        """Sampling error of the paper's 1-NN accuracy (every image is a probe)."""
        return binomial_se(self.nn_accuracy, self.images)

    @property
    def nn_strict_se(self) -> float | None:
        """Sampling error of the 1-NN accuracy with the own original left out."""
        return binomial_se(self.nn_accuracy_strict, self.nn_strict_scored)

    @property
    def judge_nn_se(self) -> float | None:
        """Sampling error of the judge's 1-NN accuracy (every image is a probe)."""
        return binomial_se(self.judge_nn_accuracy, self.images)

    @property
    def judge_nn_strict_se(self) -> float | None:
        """Sampling error of the judge's 1-NN accuracy with the own original left out."""
        return binomial_se(self.judge_nn_accuracy_strict, self.judge_nn_strict_scored)

    def value(self, metric: str) -> float | None:
        """The row's average of `metric`: a summary's mean, or the number itself ('cosine', 'judge_similarity', ...)."""
        value = getattr(self, metric)
        return value.mean if isinstance(value, Summary) else value

    def error(self, metric: str) -> float | None:
        """The sampling error of `metric`'s average (None where it has none)."""
        value = getattr(self, metric)
        if isinstance(value, Summary):
            return value.se
        return {"cosine": self.cosine_se, "nn_accuracy": self.nn_se, "nn_accuracy_strict": self.nn_strict_se,
                "pairs_accuracy": self.pairs_se, "judge_similarity": self.judge_similarity_se,
                "judge_nn_accuracy": self.judge_nn_se, "judge_nn_accuracy_strict": self.judge_nn_strict_se,
                "judge_pairs_accuracy": self.judge_pairs_se}.get(metric)

    def on_curve(self, curve: str, scale: float | None = None, method: str | None = None) -> Score:
        """This row as a point of `curve` (at `scale`, renamed to `method` if given)."""
        return replace(self, curve=curve, scale=scale, method=method or self.method)

    def to_dict(self) -> dict[str, Any]:
        """The row as results.json holds it, with the sampling errors of the accuracies added."""
        return {**asdict(self), "nn_se": self.nn_se, "nn_strict_se": self.nn_strict_se,
                "judge_nn_se": self.judge_nn_se, "judge_nn_strict_se": self.judge_nn_strict_se}
