"""RONAN Studio: alteration-free, model-agnostic origin attribution of generated images.

Quick start::

    from ronan import attribute
    result = attribute("image.png", "dcgan-fmnist")
    print(result.verdict, result.statistic, result.critical_value)
"""

__version__ = "0.1.0"

from .attribution import Attribution, attribute, attribute_batch  # noqa: E402
from .inversion import PRESETS, InversionSettings, invert, invert_stream  # noqa: E402
from .models.register import register_model  # noqa: E402
from .models.registry import list_models, load_model  # noqa: E402
from .models.wrap import wrap_generator  # noqa: E402
from .stats import grubbs_critical_value, grubbs_test  # noqa: E402

__all__ = ["Attribution", "attribute", "attribute_batch", "PRESETS", "InversionSettings", "invert",
           "invert_stream", "list_models", "load_model", "register_model", "wrap_generator",
           "grubbs_critical_value", "grubbs_test", "__version__"]
