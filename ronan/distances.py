"""Distances between reconstructions and targets: MSE (default), MAE, 1-SSIM, LPIPS.

Every distance takes two image batches ``Tensor[B, C, H, W]`` with values in [0, 1] and
returns one non-negative value per image, ``Tensor[B]``, differentiable w.r.t. the first
argument (the inversion optimises it, as in the paper's Eq. 1).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import DistanceUnavailable

DISTANCES = ("mse", "mae", "ssim", "lpips")
"""Names accepted by :func:`get_distance`."""

MSE_8BIT_FLOOR = 1 / (12 * 255**2)
"""The MSE that rounding an image in [0, 1] to 8 bits leaves (uniform rounding error: 1.28e-6)."""

REACHED_FLOOR = 8 * MSE_8BIT_FLOOR
"""Below this MSE (8x the 8-bit floor, 1.03e-5) an inversion has *reached the floor*: it found an
input that reproduces the 8-bit image up to rounding (benchmarks/RESULTS.md, "Inversions that
converge")."""

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"


class Distance:
    """A per-image distance. Subclasses set ``name`` and implement ``__call__``."""

    name: str = "distance"

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance of each image in ``x`` to the image at the same index in ``y``: ``Tensor[B]``."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Distance:
        """Move any weights to ``device``; returns self."""
        return self


class MSE(Distance):
    """Mean squared error over pixels and channels (the paper's default)."""

    name = "mse"

    def __call__(self, x, y):
        return (x - y).pow(2).flatten(1).mean(1)


class MAE(Distance):
    """Mean absolute error over pixels and channels."""

    name = "mae"

    def __call__(self, x, y):
        return (x - y).abs().flatten(1).mean(1)


class SSIM(Distance):
    """``1 - SSIM`` (Gaussian window 11, sigma 1.5, data range 1; pytorch-msssim).

    Images smaller than 11 pixels on a side are compared with a window of their odd side.
    """

    name = "ssim"

    def __call__(self, x, y):
        from pytorch_msssim import ssim

        side = min(x.shape[-2:])
        win = 11 if side >= 11 else max(1, side - (1 - side % 2))
        return 1.0 - ssim(x, y, data_range=1.0, size_average=False, win_size=win)


class LPIPS(Distance):
    """LPIPS (AlexNet, v0.1 linear layers) from the ``lpips`` package.

    The linear layers ship with the package; the AlexNet backbone weights are torchvision's
    ``alexnet-owt-7be5be79.pth`` and must be present in torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). They
    are never downloaded here and never replaced by random weights. Grayscale images are
    repeated to 3 channels; images are scaled to [-1, 1] and resized to at least 64 px
    (AlexNet's pooling needs that size).
    """

    name = "lpips"
    min_side = 64

    def __init__(self, backbone_file: str | Path | None = None):
        import lpips

        path = Path(backbone_file) if backbone_file else alexnet_weights_path()
        if not path.is_file():
            raise DistanceUnavailable(
                f"LPIPS needs the AlexNet weights file {path} (missing). Download {ALEXNET_URL} "
                f"and save it at that path, or choose another distance (mse, mae, ssim)."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
        backbone = {}
        slices = [range(0, 2), range(2, 5), range(5, 8), range(8, 10), range(10, 12)]
        for key, value in state.items():
            if not key.startswith("features."):
                continue
            _, idx, param = key.split(".")
            s = next(i for i, r in enumerate(slices) if int(idx) in r) + 1
            backbone[f"slice{s}.{idx}.{param}"] = value
        missing, unexpected = self.model.net.load_state_dict(backbone, strict=False)
        if missing or unexpected:
            raise DistanceUnavailable(f"{path} is not a torchvision AlexNet checkpoint (missing {missing[:3]})")
        self.model.eval().requires_grad_(False)

    def to(self, device):
        self.model.to(device)
        return self

    def __call__(self, x, y):
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        side = min(x.shape[-2:])
        if side < self.min_side:
            size = [round(s * self.min_side / side) for s in x.shape[-2:]]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.model(x * 2 - 1, y * 2 - 1).flatten()


def alexnet_weights_path() -> Path:
    """Where LPIPS expects torchvision's AlexNet weights (torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


@functools.lru_cache(maxsize=8)
def _cached(name: str, device: str) -> Distance:
    cls = {"mse": MSE, "mae": MAE, "ssim": SSIM, "lpips": LPIPS}[name]
    return cls().to(device)


def get_distance(name: str | Distance, device: torch.device | str = "cpu") -> Distance:
    """The distance called ``name`` (one of :data:`DISTANCES`), on ``device``; cached.

    Raises:
        ValueError: unknown name.
        DistanceUnavailable: LPIPS without its backbone weights file.
    """
    if isinstance(name, Distance):
        return name
    key = str(name).lower()
    if key not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; choose one of {', '.join(DISTANCES)}")
    return _cached(key, str(torch.device(device)))
