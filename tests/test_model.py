"""Shapes through the autoencoder, padding to multiples of 8, and gradients to every layer."""

import pytest
import torch

from facelab.model import FaceCodecNet, pad_to_block


@pytest.mark.parametrize("size", [(64, 64), (250, 250), (37, 53), (1, 1), (218, 178)])
def test_shapes_for_any_size(size: tuple[int, int]) -> None:
    model = FaceCodecNet().eval()
    image = torch.rand(2, 3, *size)
    code = model.encode(image)
    assert code.shape == (2, 128, -(-size[0] // 8), -(-size[1] // 8))
    assert set(code.unique().tolist()) <= {-1.0, 1.0}
    out = model(image)
    assert out.shape == image.shape
    assert 0 <= out.min() and out.max() <= 1


def test_intermediate_shapes_follow_the_paper() -> None:
    model = FaceCodecNet().eval()
    image = torch.rand(1, 3, 64, 96)
    first = model.encoder.layers[0](image)
    features = model.encoder(image)
    assert first.shape == (1, 32, 16, 24)
    assert features.shape == (1, 64, 8, 12)
    assert model.decoder.layers[0](model.encode(image)).shape == (1, 32, 32, 48)


def test_raw_code_is_two_bits_per_pixel() -> None:
    code = FaceCodecNet().eval().encode(torch.rand(1, 3, 256, 256))
    assert code.numel() / (256 * 256) == 2.0


def test_padding_replicates_edges() -> None:
    image = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded = pad_to_block(image)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded[..., :3, :5], image)
    assert torch.equal(padded[..., 7, 7], image[..., 2, 4])


def test_gradients_reach_every_parameter_through_the_binarizer() -> None:
    torch.manual_seed(0)
    model = FaceCodecNet().train()
    image = torch.rand(2, 3, 32, 32)
    (model(image) - image).abs().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_parameter_count() -> None:
    assert sum(p.numel() for p in FaceCodecNet().parameters()) == 285571
