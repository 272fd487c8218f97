"""facelab.verification (1-NN identification, the LFW pairs protocol, ROC AUC) and facelab.bdrate, on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import facelab.verification as verification
from facelab.bdrate import bd_rate, bd_rate_interval
from facelab.errors import FacelabError
from facelab.verification import (
    best_threshold,
    nearest_neighbour,
    nearest_neighbour_accuracy,
    nearest_neighbours,
    pairs_accuracy,
)

# Five originals in 2-D: two of "ann" near the x axis, two of "bob" near the y axis, one of "cid" on the diagonal.
GALLERY = np.array([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0], [0.2, 1.0], [1.0, 1.0]])
IDS = np.array(["ann", "ann", "bob", "bob", "cid"])


def test_one_nn_counts_a_reconstruction_that_drifted_to_another_identity():
    probes = GALLERY * 0.9  # scaling keeps every cosine: each probe finds its own original
    probes[1] = [1.0, 0.9]  # ann's second image now lies nearest cid's original
    assert nearest_neighbour_accuracy(GALLERY, IDS, probes, IDS) == pytest.approx(4 / 5)
    result = nearest_neighbour(torch.tensor(GALLERY), list(IDS), torch.tensor(probes), list(IDS))
    assert (result.correct, result.evaluated, result.skipped) == (4, 5, 0)


def test_one_nn_excluding_the_own_original_skips_single_image_identities():
    probes = GALLERY.copy()
    probes[0] = [0.3, 1.0]  # without its own original, ann's first probe lies nearest bob's (0.2, 1.0)
    result = nearest_neighbour(GALLERY, IDS, probes, IDS, exclude_same_image=True)
    # ann#1 -> bob: wrong; ann#2 -> ann#1: right; bob#1 <-> bob#2: right; cid has one image: skipped.
    assert (result.correct, result.evaluated, result.skipped) == (3, 4, 1)
    assert result.accuracy == pytest.approx(3 / 4)
    assert nearest_neighbour_accuracy(GALLERY, IDS, probes, IDS) == pytest.approx(4 / 5)  # own original included
    with pytest.raises(FacelabError, match="reconstruction of gallery image i"):
        nearest_neighbour(GALLERY, IDS, probes[:4], IDS[:4], exclude_same_image=True)


def test_one_nn_in_chunks_matches_brute_force(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, size=300)
    centres = rng.normal(size=(40, 16))
    gallery = centres[ids] + rng.normal(0, 0.6, (300, 16))
    probes = gallery + rng.normal(0, 0.8, (300, 16))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    similarities = unit(probes) @ unit(gallery).T
    expected = np.mean(ids[similarities.argmax(1)] == ids)
    np.fill_diagonal(similarities, -np.inf)
    has_other = np.bincount(ids, minlength=40)[ids] >= 2
    expected_strict = np.mean((ids[similarities.argmax(1)] == ids)[has_other])
    monkeypatch.setattr(verification, "PROBE_BLOCK", 7)
    assert nearest_neighbour_accuracy(gallery, ids, probes, ids) == pytest.approx(expected)
    assert nearest_neighbour_accuracy(gallery, ids, probes, ids, exclude_same_image=True) == pytest.approx(expected_strict)
    assert 0.3 < expected_strict < expected < 1.0  # the case is neither trivial nor hopeless
    loose, strict = nearest_neighbours(gallery, ids, probes, ids)  # one pass, both variants
    assert (loose.accuracy, strict.accuracy) == (pytest.approx(expected), pytest.approx(expected_strict))
    assert (strict.evaluated, strict.skipped) == (has_other.sum(), (~has_other).sum())


def test_one_pass_gives_none_for_a_variant_that_scores_nothing():
    singles = np.array(["ann", "bob", "cid", "dan", "eve"])  # every identity has one image: nothing strict to score
    loose, strict = nearest_neighbours(GALLERY, singles, GALLERY, singles)
    assert (loose.correct, strict) == (5, None)
    with pytest.raises(FacelabError, match="single gallery image"):
        nearest_neighbour(GALLERY, singles, GALLERY, singles, exclude_same_image=True)


def pairs(rng: np.random.Generator, separable: bool, count: int = 6000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LFW-sized pairs of 128-D embeddings: half same, half different; same pairs are near-copies when separable."""
    emb1 = rng.normal(size=(count, 128))
    same = np.arange(count) % 2 == 0
    emb2 = rng.normal(size=(count, 128))
    if separable:
        emb2[same] = emb1[same] + rng.normal(0, 0.5, (int(same.sum()), 128))
    return emb1, emb2, same


def test_pairs_protocol_on_separable_and_on_random_embeddings():
    rng = np.random.default_rng(1)
    separable = pairs_accuracy(*pairs(rng, separable=True), folds=10)
    assert separable.mean == pytest.approx(1.0, abs=1e-9) and separable.std == pytest.approx(0.0, abs=1e-9)  # one miss: 1/600
    assert len(separable.thresholds) == 10 and np.all((separable.thresholds > 0.2) & (separable.thresholds < 0.85))
    random = pairs_accuracy(*pairs(rng, separable=False), folds=10)
    assert random.mean == pytest.approx(0.5, abs=0.04)
    assert 0 < random.std < 0.06 and random.standard_error == pytest.approx(random.std * np.sqrt(10 / 9) / np.sqrt(10))


def test_pairs_folds_given_per_pair_match_folds_given_as_a_count():
    emb1, emb2, same = pairs(np.random.default_rng(2), separable=False, count=600)
    by_count = pairs_accuracy(emb1, emb2, same, folds=10)
    by_label = pairs_accuracy(emb1, emb2, same, folds=np.repeat(np.arange(10), 60))
    np.testing.assert_allclose(by_count.per_fold, by_label.per_fold, rtol=0, atol=1e-9)  # one pair: 1/60
    with pytest.raises(FacelabError, match="folds"):
        pairs_accuracy(emb1, emb2, same, folds=1)


def test_best_threshold_separates_a_known_case():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.35])
    same = np.array([False, False, False, True, True, True])
    threshold = best_threshold(scores, same)
    assert threshold == pytest.approx(0.325)  # the midpoint of 0.3 and 0.35, the only perfect cut
    assert np.all((scores > threshold) == same)


PSNR = np.array([30.0, 33.0, 36.0, 39.0])
RATE = np.array([0.25, 0.5, 1.0, 2.0])


def test_bd_rate_of_a_rate_scaled_curve():
    assert bd_rate(RATE, PSNR, RATE * 0.8, PSNR) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE * 1.25, PSNR) == pytest.approx(25.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_of_a_curve_one_db_better_on_a_different_grid():
    # Rate doubles every 3 dB (log-linear), so 1 dB better at every rate costs 2**(-1/3) of the bits: -20.63%.
    test_psnr = np.array([31.5, 33.0, 35.0, 38.0, 40.0])
    test_rate = 0.25 * 2 ** ((test_psnr - 1.0 - 30.0) / 3.0)
    assert bd_rate(RATE, PSNR, test_rate, test_psnr) == pytest.approx((2 ** (-1 / 3) - 1) * 100, abs=1e-6)


def test_bd_rate_is_not_thrown_by_a_saturating_metric():
    # A cosine-like metric that saturates near 1: VCEG-M33's single cubic swings there; PCHIP keeps -20% exact.
    rate = np.array([0.3, 0.4, 0.5, 0.7, 1.1, 1.6])
    cosine = np.array([0.62, 0.85, 0.95, 0.982, 0.997, 0.999])
    assert bd_rate(rate, cosine, rate * 0.8, cosine) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(rate, cosine, rate[:4] * 1.5, cosine[:4]) == pytest.approx(50.0, abs=0.5)


def test_bd_rate_drops_points_that_cost_bits_for_no_quality():
    wasted = np.append(RATE, RATE[-1] * 2)
    assert bd_rate(RATE, PSNR, wasted * 0.8, np.append(PSNR, PSNR[-1] - 1)) == pytest.approx(-20.0, abs=1e-9)
    with pytest.raises(FacelabError, match="quality rises"):
        bd_rate(RATE, PSNR, RATE, np.full(len(RATE), PSNR[0]))


def test_bd_rate_refuses_short_or_disjoint_curves():
    with pytest.raises(FacelabError, match="at least 4"):
        bd_rate(RATE[:3], PSNR[:3], RATE, PSNR)
    with pytest.raises(FacelabError, match="overlap"):
        bd_rate(RATE, PSNR, RATE, PSNR + 20)
    with pytest.raises(FacelabError, match="positive"):
        bd_rate(RATE, PSNR, RATE - 1, PSNR)


def _faces(images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image rates and PSNRs of a 4-point curve: each face a little harder or easier than the curve above."""
    generator = np.random.default_rng(seed)
    rates = RATE * np.exp(generator.normal(0, 0.3, (images, 1)))
    return rates, PSNR + generator.normal(0, 1.5, (images, 1)) + generator.normal(0, 0.5, (images, 4))


def test_bd_rate_interval_is_exact_for_a_per_face_rate_scale_and_narrows_with_more_faces():
    rates, psnr = _faces(200, seed=1)
    assert bd_rate_interval(rates, psnr, rates * 0.8, psnr, draws=50) == pytest.approx((-20.0, -20.0), abs=1e-9)
    widths = []
    for images in (100, 1600):
        rates, psnr = _faces(images, seed=2)
        test_rates, test_psnr = _faces(images, seed=3)
        low, high = bd_rate_interval(rates, psnr, test_rates, test_psnr, draws=300)
        assert low < bd_rate(rates.mean(0), psnr.mean(0), test_rates.mean(0), test_psnr.mean(0)) < high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # sixteen times the faces: about a quarter of the width
    with pytest.raises(FacelabError, match="same images"):
        bd_rate_interval(rates, psnr, test_rates[:10], test_psnr[:10])
    with pytest.raises(FacelabError, match="finite"):
        bd_rate_interval(rates, psnr * np.nan, test_rates, test_psnr)
