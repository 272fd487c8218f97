"""Eq. 1 of the paper: statistics of the stochastic sign, the deterministic sign, and the gradient."""

import torch

from facelab.binarizer import Binarizer, binarize, deterministic_sign, paper_eq1_as_printed, stochastic_sign


def test_stochastic_sign_is_unbiased() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 21)
    samples = stochastic_sign(x.repeat(20000, 1), generator)
    assert set(samples.unique().tolist()) <= {-1.0, 1.0}
    mean = samples.mean(0)
    # E[Bin(x)] = x; the standard error of 20000 signs is at most 1/sqrt(20000) ~ 0.007
    assert torch.allclose(mean, x, atol=0.03)
    assert samples[:, 0].eq(-1).all() and samples[:, -1].eq(1).all()


def test_probability_of_plus_one_is_one_plus_x_over_two() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.full((100000,), 0.5)
    plus = stochastic_sign(x, generator).eq(1).float().mean().item()
    assert abs(plus - 0.75) < 0.01


def test_eq1_as_printed_has_mean_minus_x() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.linspace(-1, 1, 11)
    mean = paper_eq1_as_printed(x.repeat(20000, 1), generator).mean(0)
    assert torch.allclose(mean, -x, atol=0.03)


def test_deterministic_sign_never_outputs_zero() -> None:
    x = torch.tensor([-0.3, 0.0, 1e-8, 0.7])
    assert deterministic_sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_straight_through_gradient_is_identity() -> None:
    x = torch.linspace(-0.9, 0.9, 7, requires_grad=True)
    binarize(x, stochastic=True).mul(torch.arange(7.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(7.0))


def test_binarizer_module_stochastic_only_in_training() -> None:
    torch.manual_seed(0)
    module = Binarizer(64, 128)
    features = torch.randn(2, 64, 4, 5)
    module.eval()
    assert torch.equal(module(features), module(features))
    module.train()
    first, second = module(features), module(features)
    assert first.shape == (2, 128, 4, 5)
    assert not torch.equal(first, second)
    assert set(first.unique().tolist()) == {-1.0, 1.0}
