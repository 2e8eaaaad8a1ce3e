"""Numeric precision of the generator's forward passes on CUDA.

``autocast(device, precision)`` is the one context every forward pass of an inversion runs in:
bf16/fp16 autocast where asked for (CUDA only), else exact IEEE fp32. Exact fp32 matters on CUDA
because PyTorch lets cuDNN convolutions use TF32 by default (:func:`exact_fp32`).
"""

from __future__ import annotations

import contextlib
import threading

import torch

_TF32_LOCK = threading.Lock()
_TF32_USERS = 0
_TF32_SAVED: tuple[bool, bool] = (False, False)


@contextlib.contextmanager
def exact_fp32():
    """Plain IEEE fp32 on CUDA while any inversion runs: TF32 off for convolutions and matmuls.

    PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default; its rounding lifts
    a belonging image's reconstruction loss far above the 8-bit floor that the belonging
    distribution (built on any device) sits at, and it breaks the finite differences of the
    refinement. Measured on an H200 with the 64x64 DCGAN: every belonging image judged not
    belonging by the robust test with TF32 on. The flags are process-wide, so the first of
    concurrent users saves them and the last restores them.
    """
    global _TF32_USERS, _TF32_SAVED
    with _TF32_LOCK:
        if _TF32_USERS == 0:
            _TF32_SAVED = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        _TF32_USERS += 1
    try:
        yield
    finally:
        with _TF32_LOCK:
            _TF32_USERS -= 1
            if _TF32_USERS == 0:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = _TF32_SAVED


def autocast(device: torch.device, precision: str):
    """Context of the generator's forward passes: bf16/fp16 autocast on CUDA, else exact fp32
    (TF32 off on CUDA, :func:`exact_fp32`; nothing to change on a CPU)."""
    if device.type == "cuda" and precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return exact_fp32() if device.type == "cuda" else contextlib.nullcontext()
