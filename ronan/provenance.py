"""Versions and environment recorded with every result, for reproducibility."""

from __future__ import annotations

import functools
import platform
from importlib import metadata


def library_versions() -> dict:
    """Versions of Python, RONAN and the libraries that affect its numbers (a new dict each call)."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> dict:
    """:func:`library_versions`, read once per process: reading a package's metadata parses its
    METADATA file (~3 ms each, 15 ms per result), and versions do not change while it runs."""
    from . import __version__

    out: dict[str, str | None] = {"python": platform.python_version(), "ronan": __version__}
    for pkg in ("torch", "numpy", "scipy", "pillow", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device=None, models=(), precision: str = "fp32") -> dict:
    """What a third party needs to reproduce a result's numbers beyond the library versions.

    Args:
        device (torch.device | str | None): where the inversions ran; None: the CPU.
        models (iterable of Generator): the generators inverted (default none); on CUDA, those
            whose Adam steps run from CUDA graphs (:mod:`ronan.graphs`) are named (a recording
            that fails falls back to eager steps; the inversion's ``extra`` says so).
        precision (str): the inversions' precision (default ``"fp32"``; graphs only in fp32).

    Returns a JSON-ready dict: ``machine`` (architecture), ``cpu`` (model name), ``cpu_capability``
    (the vector instruction set torch's kernels use: ``DEFAULT``, ``AVX2``, ``AVX512``...; set
    ``ATEN_CPU_CAPABILITY`` to force one), ``torch_threads``, ``deterministic_algorithms``,
    ``device`` and, on CUDA, the GPU name, CUDA version and ``cuda_graphs`` (the names of the
    generators whose Adam steps run from CUDA graphs in fp32). Floating-point results differ between
    instruction sets, thread counts and graph replay in the last bits; benchmarks/RESULTS.md
    ("Reproducibility", "GPU: CUDA graphs for the hub UNets") measures what that changes.
    """
    import torch

    out = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "device": str(device) if device is not None else "cpu",
    }
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        from .graphs import wants_graphs

        dev = torch.device(device)
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["cuda"] = torch.version.cuda
        out["cuda_graphs"] = [m.name for m in models if m is not None and wants_graphs(m, dev, precision)]
    return out
