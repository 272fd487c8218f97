"""From per-image results to the numbers of a table row: sizes, quality summaries and face-recognition scores.

Face verification accuracy is the paper's 1-NN protocol (`facelab.verification.nearest_neighbour`):
gallery = FaceNet embeddings of every ORIGINAL in the set, probes = embeddings of the reconstructions;
a probe is correct when its most cosine-similar gallery image shows its identity. A probe's own original
is in the gallery, so a faithful reconstruction scores by finding itself (what the paper's ~0.99 for JPEG
implies). `nn_accuracy_strict` leaves the probe's own original out (`exclude_same_image=True`): its nearest
OTHER original must share its identity, and probes whose identity has one image in the set are not scored.
The LFW View-2 protocol (`pairs_accuracy`) compares the reconstructions of both images of each pair,
thresholds chosen on 9 folds and applied to the 10th.

Every face score is given twice: by FaceNet, which the face loss trains against, and by the judge
(`facelab.judge`, dlib's ResNet descriptor, never trained against): the same protocols on the judge's descriptors
(ranked by cosine, as FaceNet's), and its similarity to the original's descriptor (1 - distance, `judge.similarity`)
in place of FaceNet's cosine.
"""

from __future__ import annotations

import math

import numpy as np

from facelab.bdrate import bd_rate
from facelab.errors import FacelabError
from facelab.evaluation.originals import Originals
from facelab.evaluation.rows import Score, Summary
from facelab.evaluation.runner import MethodResult
from facelab.evaluation.selection import EvalSet
from facelab.rate import bpp
from facelab.verification import nearest_neighbours, pairs_accuracy

BD_METRICS = {"PSNR": "psnr", "MS-SSIM dB": "ms_ssim_db", "cosine": "cosine", "judge similarity": "judge_similarity"}
"""Quality measures BD-rate is computed over (MS-SSIM in dB: -10 log10(1 - MS-SSIM)); 'cosine' is FaceNet's, 'judge
similarity' the judge's (`judge.similarity`)."""

JUDGE_PREFIX = "judge_"
"""Prefix of the judge's fields of a row (`rows.Score`): judge_nn_accuracy beside FaceNet's nn_accuracy."""


def identification(gallery: np.ndarray, probes: np.ndarray, evalset: EvalSet,
                   prefix: str = "") -> dict[str, float | int | None]:
    """The paper's 1-NN accuracy and its strict variant (see the module docstring) of `probes` (one recogniser's
    embeddings of the reconstructions) against `gallery` (its embeddings of the originals); None without identities.
    The keys start with `prefix`."""
    identities = evalset.identities
    scores: dict[str, float | int | None] = {"nn_accuracy": None, "nn_accuracy_strict": None, "nn_strict_scored": 0}
    if identities is not None:
        loose, strict = nearest_neighbours(gallery, identities, probes, identities)
        scores["nn_accuracy"] = loose.accuracy
        if strict is not None:  # None: every identity has a single image, so the strict variant scores nothing
            scores.update(nn_accuracy_strict=strict.accuracy, nn_strict_scored=strict.evaluated)
    return {prefix + key: value for key, value in scores.items()}


def pairs_score(embeddings: np.ndarray, evalset: EvalSet, prefix: str = "") -> dict[str, float | int | None]:
    """LFW View-2 accuracy (mean, std and standard error over folds) on the set's complete pairs, from one recogniser's
    `embeddings` of the reconstructions; None when there are too few. The keys start with `prefix`, but for 'pairs',
    their count."""
    pairs = evalset.pairs
    folds = np.asarray([pair.fold for pair in pairs])
    same = np.asarray([pair.same for pair in pairs])
    scores: dict[str, float | None] = {"pairs_accuracy": None, "pairs_std": None, "pairs_se": None}
    if len(pairs) >= 2 and len(np.unique(folds)) >= 2:
        first = embeddings[[pair.first for pair in pairs]]
        second = embeddings[[pair.second for pair in pairs]]
        scored = pairs_accuracy(first, second, same, folds)
        scores = {"pairs_accuracy": scored.mean, "pairs_std": scored.std, "pairs_se": scored.standard_error}
    return {**{prefix + key: value for key, value in scores.items()}, **({} if prefix else {"pairs": len(pairs)})}


def judge_scores(result: MethodResult, originals: Originals, evalset: EvalSet) -> dict[str, float | int | None]:
    """The judge's numbers of a row: its mean similarity to the originals (± standard error), 1-NN and pairs."""
    similarity = np.asarray(result.judge_similarity, dtype=np.float64)
    return {"judge_similarity": float(similarity.mean()), "judge_similarity_se": Summary.of(similarity).se,
            **identification(originals.judge_embeddings, result.judge_embeddings, evalset, JUDGE_PREFIX),
            **pairs_score(result.judge_embeddings, evalset, JUDGE_PREFIX)}


def score(result: MethodResult, coder: str, originals: Originals, evalset: EvalSet, model: str | None = None) -> Score:
    """Every number of one (method, coder) row: sizes, bpp, ratios, PSNR, MS-SSIM, cosine, 1-NN, pairs, misses, and
    the judge's similarity, 1-NN and pairs.

    `model` is the facelab model's label when the method is one of its operating points."""
    sizes = result.sizes[coder]
    pixels = originals.heights * originals.widths
    primary = next(iter(result.sizes))  # the coder the method reconstructs through; others are named in the row
    name = result.name if coder == primary else f"{result.name} ({coder})"
    cosine = np.asarray(result.cosine, dtype=np.float64)
    return Score(
        method=name, family=result.family, coder=coder, images=len(sizes), bytes=int(sizes.sum()),
        mb=float(sizes.sum() / 1e6), bpp=Summary.of(bpp(sizes, originals.heights, originals.widths)),
        ratio_raw=Summary.of(3.0 * pixels / sizes),
        ratio_file=Summary.of(originals.file_bytes / sizes), psnr=Summary.of(result.psnr),
        ms_ssim=Summary.of(result.ms_ssim),
        quality=Summary.of(result.quality) if np.isfinite(result.quality).all() else None,
        cosine=float(cosine.mean()), cosine_se=Summary.of(cosine).se, not_detected=int((~result.detected).sum()),
        **identification(originals.embeddings, result.embeddings, evalset), **pairs_score(result.embeddings, evalset),
        **judge_scores(result, originals, evalset), model=model,
    )


def bd_rates(points: list[Score], anchor: str = "jpeg") -> list[dict]:
    """BD-rate of every curve against the `anchor` curve (JPEG's by default), per BD_METRICS entry (None where the
    curves do not overlap). Negative: the curve needs that many percent fewer bits for the same quality."""
    curves: dict[str, list[Score]] = {}
    for point in points:
        curves.setdefault(point.curve, []).append(point)
    if anchor not in curves:
        return []

    def series(rows: list[Score], metric: str) -> tuple[np.ndarray, np.ndarray]:
        rate = np.asarray([row.bpp.mean for row in rows])
        if metric == "ms_ssim_db":
            quality = np.asarray([-10 * math.log10(max(1 - row.ms_ssim.mean, 1e-12)) for row in rows])
        else:
            quality = np.asarray([row.value(metric) for row in rows])
        return rate, quality

    entries = []
    for name, rows in curves.items():
        if name == anchor:
            continue
        values = {}
        for label, metric in BD_METRICS.items():
            try:
                values[label] = bd_rate(*series(curves[anchor], metric), *series(rows, metric))
            except FacelabError:
                values[label] = None
        entries.append({"curve": name, "bd_rate": values})
    return entries
