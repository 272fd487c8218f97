"""Face-verification scores: the paper's 1-NN identification and LFW's 10-fold pairs protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from facelab.errors import FacelabError
from facelab.metrics import cosine_similarity, embedding_matrix

PROBE_BLOCK = 1024
"""Probes scored against the gallery at a time: a 1024 x 13,233 float32 block is about 54 MB."""


@dataclass(frozen=True)
class NearestNeighbourResult:
    """1-NN identification: accuracy = correct / evaluated; skipped counts probes that could not be scored."""

    accuracy: float
    correct: int
    evaluated: int
    skipped: int


def _unit_rows(embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
    """Embeddings scaled to unit length (in float64), as float32 so a matrix product gives cosine similarities at
    twice float64's speed; FaceNet's embeddings are float32 to begin with."""
    matrix = embedding_matrix(embeddings)
    return (matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _labels(ids, count: int, what: str) -> np.ndarray:
    """Identity labels as a 1-D array of `count` entries (any hashable kind: names or numbers)."""
    labels = np.asarray(ids)
    if labels.shape != (count,):
        raise FacelabError(f"{what}: expected {count} identities, one per embedding, got shape {labels.shape}")
    return labels


def nearest_neighbour(
    gallery_emb: np.ndarray | torch.Tensor,
    gallery_ids,
    probe_emb: np.ndarray | torch.Tensor,
    probe_ids,
    exclude_same_image: bool = False,
    progress: bool = False,
) -> NearestNeighbourResult:
    """The paper's 1-NN cosine identification of reconstructions against originals; see nearest_neighbour_accuracy."""
    (result,) = nearest_neighbours(gallery_emb, gallery_ids, probe_emb, probe_ids, (exclude_same_image,), progress)
    if result is None:
        raise FacelabError("no probe can be scored: every identity has a single gallery image")
    return result


def nearest_neighbours(
    gallery_emb: np.ndarray | torch.Tensor,
    gallery_ids,
    probe_emb: np.ndarray | torch.Tensor,
    probe_ids,
    variants: tuple[bool, ...] = (False, True),
    progress: bool = False,
) -> list[NearestNeighbourResult | None]:
    """1-NN identification for each `exclude_same_image` in `variants`, from one pass over the similarities.

    Each block of probes is multiplied with the gallery once; the strict variant is the same block with each
    probe's own original masked out. A variant that can score no probe gives None."""
    gallery = _unit_rows(gallery_emb)
    probes = _unit_rows(probe_emb)
    if gallery.shape[1] != probes.shape[1]:
        raise FacelabError(f"gallery and probe embeddings differ in size: {gallery.shape[1]} vs {probes.shape[1]}")
    gallery_labels = _labels(gallery_ids, len(gallery), "gallery")
    probe_labels = _labels(probe_ids, len(probes), "probes")
    if any(variants) and len(gallery) != len(probes):
        raise FacelabError(
            "exclude_same_image needs probe i to be the reconstruction of gallery image i: "
            f"got {len(probes)} probes for {len(gallery)} gallery images"
        )
    _, codes = np.unique(np.concatenate([gallery_labels, probe_labels]), return_inverse=True)
    gallery_codes, probe_codes = codes[: len(gallery)], codes[len(gallery) :]
    counts = np.bincount(gallery_codes, minlength=codes.max() + 1)
    scorable = {False: np.ones(len(probes), dtype=bool), True: counts[probe_codes] >= 2}
    order = sorted(set(variants))  # the loose variant first: the strict one masks the block in place
    correct = dict.fromkeys(order, 0)
    starts = range(0, len(probes), PROBE_BLOCK)
    for start in tqdm(starts, desc="1-NN", unit="chunk", disable=not progress or len(starts) < 2):
        stop = min(start + PROBE_BLOCK, len(probes))
        similarities = probes[start:stop] @ gallery.T
        for exclude in order:
            if exclude:
                rows = np.arange(stop - start)
                similarities[rows, rows + start] = -np.inf
            nearest = gallery_codes[np.argmax(similarities, axis=1)]
            correct[exclude] += int(np.sum((nearest == probe_codes[start:stop]) & scorable[exclude][start:stop]))
    results = []
    for exclude in variants:
        evaluated = int(scorable[exclude].sum())
        right = correct[exclude]
        results.append(NearestNeighbourResult(right / evaluated, right, evaluated, len(probes) - evaluated)
                       if evaluated else None)
    return results


def nearest_neighbour_accuracy(
    gallery_emb: np.ndarray | torch.Tensor,
    gallery_ids,
    probe_emb: np.ndarray | torch.Tensor,
    probe_ids,
    exclude_same_image: bool = False,
) -> float:
    """The paper's face verification accuracy: the share of probes whose nearest gallery embedding has their identity.

    The gallery holds embeddings of the ORIGINAL images, the probes embeddings of the RECONSTRUCTIONS;
    "nearest" is the largest cosine similarity. By default the probe's own original IS in the gallery
    (what the paper's ~0.99 JPEG figures imply: a good reconstruction finds its own original), so every
    probe is scored. With exclude_same_image=True (probe i must then be the reconstruction of gallery
    image i) the probe's own original is left out: its nearest OTHER original must share its identity,
    and probes whose identity has a single gallery image are skipped (nearest_neighbour counts them).
    """
    return nearest_neighbour(gallery_emb, gallery_ids, probe_emb, probe_ids, exclude_same_image).accuracy


@dataclass(frozen=True)
class PairsResult:
    """LFW pairs protocol: mean and std (ddof=0) of the held-out fold accuracies, each fold's threshold and accuracy."""

    mean: float
    std: float
    thresholds: np.ndarray
    per_fold: np.ndarray

    @property
    def standard_error(self) -> float:
        """Standard error of the mean over folds (sample std / sqrt(folds)), the figure LFW's README asks for."""
        return float(np.std(self.per_fold, ddof=1) / np.sqrt(len(self.per_fold))) if len(self.per_fold) > 1 else 0.0


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The cosine-similarity threshold (say "same" when score > threshold) with the highest accuracy on these pairs.

    Candidates are the midpoints between consecutive distinct scores and one below / above all of them;
    ties go to the lowest such threshold.
    """
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    order = np.argsort(scores)
    sorted_scores, sorted_same = scores[order], same[order]
    below = np.searchsorted(sorted_scores, candidates, side="right")
    same_below = np.concatenate([[0], np.cumsum(sorted_same)])[below]
    different_below = below - same_below
    same_above = sorted_same.sum() - same_below
    accuracy = (same_above + different_below) / len(scores)
    return float(candidates[int(np.argmax(accuracy))])


def pairs_accuracy(
    emb1: np.ndarray | torch.Tensor,
    emb2: np.ndarray | torch.Tensor,
    same: np.ndarray,
    folds: np.ndarray | int = 10,
) -> PairsResult:
    """The standard LFW View-2 protocol on embedding pairs, scored by cosine similarity (on unit-length
    embeddings L2 distance ranks pairs identically: d^2 = 2 - 2 cos, so the accuracies are the same).

    For each fold, the threshold that maximises accuracy on the other folds (best_threshold) is applied
    to the held-out fold; mean and std are over the held-out accuracies. `folds` gives each pair's fold,
    or a number of folds into which the pairs are cut in order (pairs.txt's layout: 10 blocks of 600).
    """
    scores = cosine_similarity(emb1, emb2)
    same = np.asarray(same).astype(bool)
    if same.shape != scores.shape:
        raise FacelabError(f"expected {len(scores)} same/different labels, got shape {same.shape}")
    if isinstance(folds, (int, np.integer)):
        if not 2 <= folds <= len(scores):
            raise FacelabError(f"cannot cut {len(scores)} pairs into {folds} folds")
        fold_of = np.arange(len(scores)) * int(folds) // len(scores)
    else:
        fold_of = np.asarray(folds)
        if fold_of.shape != scores.shape:
            raise FacelabError(f"expected one fold per pair ({len(scores)}), got shape {fold_of.shape}")
    names = np.unique(fold_of)
    if len(names) < 2:
        raise FacelabError("the pairs protocol needs at least 2 folds")
    thresholds, per_fold = [], []
    for name in names:
        held_out = fold_of == name
        threshold = best_threshold(scores[~held_out], same[~held_out])
        thresholds.append(threshold)
        per_fold.append(float(np.mean((scores[held_out] > threshold) == same[held_out])))
    per_fold_array = np.asarray(per_fold)
    return PairsResult(float(per_fold_array.mean()), float(per_fold_array.std()), np.asarray(thresholds), per_fold_array)
