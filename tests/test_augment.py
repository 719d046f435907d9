"""Train-time augmentations (datasets/augment.py): what each does to a batch, and its randomness."""

from __future__ import annotations

import pytest
import torch

from scaleqbench.datasets.augment import AUGMENTATIONS, augment


def squares(b: int, n: int = 40, side: int = 10) -> torch.Tensor:
    """``b`` copies of a centred ``side x side`` square of ones on an ``n x n`` zero canvas."""
    x = torch.zeros(b, 1, n, n)
    lo = (n - side) // 2
    x[..., lo:lo + side, lo:lo + side] = 1.0
    return x


def extent(x: torch.Tensor) -> torch.Tensor:
    """Width (pixels) of the bright part of each image: columns whose max passes 0.5."""
    return (x.amax(dim=(1, 2)) > 0.5).sum(-1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_off_is_the_identity_and_draws_nothing():
    x = torch.rand(4, 1, 28, 28)
    g = gen(0)
    assert augment(None, x, g) is x
    # the generator was not advanced: the next draw is the first draw of a fresh one
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=gen(0)))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_shape_dtype_and_batch_order_are_kept(name):
    n = 96 if name == "stl" else 28
    x = torch.rand(6, 3, n, n, dtype=torch.float64)
    x[2] = 0.0  # an empty image stays empty: each output comes from its own input
    out = augment(name, x, gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.all(out[2] == 0)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_a_seeded_generator_makes_it_reproducible(name):
    n = 96 if name == "stl" else 28
    x = torch.rand(8, 1, n, n)
    a, b = augment(name, x, gen(3)), augment(name, x, gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(name, x, gen(4)))
    # the global generator plays no part
    torch.manual_seed(0)
    c = augment(name, x, gen(3))
    torch.manual_seed(1)
    assert torch.equal(c, augment(name, x, gen(3)))


def test_rescale_zooms_by_factors_spanning_half_to_double():
    side = 10
    widths = extent(augment("rescale", squares(400, side=side), gen(0))).float()
    # every factor lies in [0.5, 2]: the square is 5..20 px wide (a pixel of rounding either way)
    assert widths.min() >= 0.5 * side - 1 and widths.max() <= 2 * side + 1
    # and the draws cover the range: uniform factors reach both ends and fill the middle
    assert widths.min() <= 0.5 * side + 1 and widths.max() >= 2 * side - 1
    mean_factor = (widths / side).mean().item()
    assert abs(mean_factor - 1.25) < 0.1  # the mean of U[0.5, 2]


def test_rescale_keeps_the_object_centred():
    out = augment("rescale", squares(50), gen(1))
    cols = torch.arange(40, dtype=torch.float32)
    mass = out.clamp(min=0).sum(dim=(1, 2))  # (B, n): column profile
    centre = (mass * cols).sum(-1) / mass.sum(-1)
    assert torch.allclose(centre, torch.full_like(centre, 19.5), atol=0.6)


def test_stl_crops_flips_and_cuts_out():
    n = 96
    ones = torch.ones(64, 1, n, n)
    out = augment("stl", ones, gen(0))
    # crop (12 px zero padding) and cutout (a 32 x 32 square, clipped at the border) only
    # ever remove content: values stay 0 or 1, and at least a 16 x 16 corner is cut
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(out.sum(dim=(1, 2, 3)) <= n * n - 16 * 16)
    # the crop's vertical shift shows as zero rows of padding at the top or the bottom (the
    # cutout is narrower than a row, so it blanks none): up to 12, on one side, shifts varying
    blank = (out[:, 0] == 0).all(-1)  # (B, n): rows with nothing left
    top = blank.int().cumprod(-1).sum(-1)
    bottom = blank.flip(-1).int().cumprod(-1).sum(-1)
    assert top.max() <= 12 and bottom.max() <= 12 and torch.all(top * bottom == 0)
    assert len(set((top - bottom).tolist())) > 10


def test_stl_flips_about_half_of_the_images():
    n = 96
    ramp = torch.linspace(0, 1, n).expand(200, 1, n, n).contiguous()
    out = augment("stl", ramp, gen(2))
    # the ramp rises left to right; a flipped crop falls. Compare a central row's two halves
    row = out[:, 0, n // 2]
    left, right = row[:, : n // 2].sum(-1), row[:, n // 2:].sum(-1)
    flipped = (left > right).float().mean().item()
    assert 0.35 < flipped < 0.65


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        augment("blur", torch.zeros(1, 1, 8, 8), gen(0))
