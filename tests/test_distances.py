import pytest
import torch

from ronan.distances import ALEXNET_FILE, get_distance, LPIPS
from ronan.errors import DistanceUnavailable


def test_mse_mae_values():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.zeros(2, 1, 4, 4)
    y[0] += 0.5
    y[1, :, :2] += 1.0
    assert get_distance("mse")(x, y).tolist() == pytest.approx([0.25, 0.5])
    assert get_distance("mae")(x, y).tolist() == pytest.approx([0.5, 0.5])


def test_ssim_is_zero_for_identical_and_grows_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=g)
    d = get_distance("ssim")
    assert d(x, x).abs().max() < 1e-5
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    very = (x + 0.5 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert (d(noisy, x) > 0.05).all() and (d(very, x) > d(noisy, x)).all()


def test_distances_are_differentiable():
    for name in ("mse", "mae", "ssim"):
        x = torch.rand(2, 1, 28, 28, requires_grad=True)
        get_distance(name)(x, torch.rand(2, 1, 28, 28)).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def test_unknown_distance():
    with pytest.raises(ValueError, match="mse, mae, ssim, lpips"):
        get_distance("l7")


def test_lpips_without_backbone_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(DistanceUnavailable) as e:
        get_distance("lpips")
    assert ALEXNET_FILE in str(e.value) and str(tmp_path) in str(e.value)


def test_lpips_with_a_backbone_file(tmp_path):
    # A torchvision AlexNet checkpoint with random weights stands in for the real one offline.
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / ALEXNET_FILE
    torch.save(torchvision.models.alexnet().state_dict(), path)
    d = LPIPS(backbone_file=path)
    x = torch.rand(2, 1, 28, 28)
    assert d(x, x).abs().max() < 1e-6
    assert (d(x, torch.rand(2, 1, 28, 28)) > 0).all()
