"""L-BFGS in spectral coordinates (dlg_core/attacks/spectral.py): the same pictures in other units, and the
preconditioner that took iDLG on LeNet to 30 dB in fewer evaluations."""

import pytest
import torch

from dlg_core import config as cfg
from dlg_core.attacks.spectral import FINE_DETAIL_SCALE, SpectralCoordinates
from dlg_core.bench import bench_run
from dlg_core.images import load_sample
from dlg_core.run import AttackRun


def test_spectral_coordinates_are_the_same_pictures_in_other_units():
    spectral = SpectralCoordinates(16, 12, torch.float64)
    z = torch.rand(2, 3, 16, 12, dtype=torch.float64)
    assert torch.allclose(spectral.coords(spectral.picture(z)), z, atol=1e-12)
    assert torch.allclose(spectral.picture(spectral.coords(z)), z, atol=1e-12)
    # the mean colour passes as it is; the finest checkerboard is scaled down by 1 + FINE_DETAIL_SCALE
    flat = torch.full((1, 3, 16, 12), 0.7, dtype=torch.float64)
    assert torch.allclose(spectral.picture(flat), flat)
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(12), indexing="ij")
    checkerboard = ((-1.0) ** (rows + cols)).to(torch.float64).expand(1, 3, 16, 12)
    assert torch.allclose(spectral.picture(checkerboard), checkerboard / (1 + FINE_DETAIL_SCALE))


def test_a_spectral_run_starts_from_the_same_picture_and_shows_pictures_not_coordinates():
    image = load_sample("cat_chelsea", 16)
    config = cfg.default_for("idlg", "lenet").replace(size=16, classes=10, steps=3)
    pixels = list(AttackRun(config.replace(precondition="none"), image, [3]))
    spectral = list(AttackRun(config.replace(precondition="spectral"), image, [3]))
    assert torch.allclose(pixels[0].image, spectral[0].image, atol=1e-5)  # the grey start, either way
    assert spectral[0].gradient_distance == pytest.approx(pixels[0].gradient_distance, rel=1e-4)
    assert spectral[-1].psnr > spectral[0].psnr  # the frames are pictures getting nearer the photo


@pytest.mark.parametrize("seed", [0, 1])
def test_spectral_coordinates_take_lenet_to_30_db_in_fewer_evaluations(seed):
    image = load_sample("dog_pekingese", 16)
    config = cfg.default_for("idlg", "lenet").replace(size=16, classes=100, seed=seed)
    assert config.precondition == "spectral"  # LeNet's measured default (attack_registry.py)
    pixels = bench_run(config.replace(precondition="none"), image, [7]).evals_to_30db
    spectral = bench_run(config, image, [7]).evals_to_30db
    assert spectral is not None and pixels is not None
    assert spectral < 0.8 * pixels
