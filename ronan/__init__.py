"""RONAN Studio: alteration-free, model-agnostic origin attribution of generated images.

Quick start::

    from ronan import attribute
    result = attribute("image.png", "dcgan-fmnist")
    print(result.verdict, result.statistic, result.critical_value)

The names below are imported on first use (PEP 562), so that ``import ronan`` and commands that
need no model (``ronan models``) start without importing torch and scipy.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Attribution": ".attribution",
    "attribute": ".attribution",
    "attribute_batch": ".attribution",
    "PRESETS": ".inversion",
    "InversionSettings": ".inversion",
    "invert": ".inversion",
    "invert_stream": ".inversion",
    "register_model": ".models.register",
    "list_models": ".models.registry",
    "load_model": ".models.registry",
    "wrap_generator": ".models.wrap",
    "grubbs_critical_value": ".stats",
    "grubbs_test": ".stats",
}

__all__ = [
    "Attribution",
    "attribute",
    "attribute_batch",
    "PRESETS",
    "InversionSettings",
    "invert",
    "invert_stream",
    "list_models",
    "load_model",
    "register_model",
    "wrap_generator",
    "grubbs_critical_value",
    "grubbs_test",
    "__version__",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ronan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
