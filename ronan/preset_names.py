"""The names of the inversion presets, and ``"default"``: the model's own (torch-free).

The settings behind each name are :data:`ronan.inversion.PRESETS`; reading and validating model
cards (``ronan models``) needs only the names, and no torch.
"""

from __future__ import annotations

from typing import Any

PRESET_SUMMARIES: dict[str, str] = {
    "default": "each model's own: the preset its card names (e.g. thorough), else fast",
    "paper": "the paper's procedure: Adam lr 0.1, 1500 steps, one start",
    "fast": "learned start, at most 100 Adam steps, then at most 32 Levenberg-Marquardt iterations "
    "(on the reference model 4)",
    "fast-lm16": "the previous default: learned start, at most 300 Adam steps, 16 Levenberg-Marquardt iterations",
    "fast-adam": "Adam with early stopping only, at most 1000 steps (where the refinement cannot apply)",
    "thorough": "8 starts around the learned one, then at most 160 Levenberg-Marquardt iterations: for models "
    "whose own images do not invert with fast (2-3x slower)",
    "two-path": "learned start, at most 280 Levenberg-Marquardt iterations; an image left above the 8-bit floor "
    "is inverted again on the typical shell of the input, the better kept",
}
"""One short line per preset and for ``"default"``, for choosers (the app);
:meth:`ronan.inversion.InversionSettings.describe` has the details."""
DEFAULT_PRESET = "fast"
"""The preset of models whose card names none."""
MODEL_PRESET = "default"
"""The preset name that means "the model's own": its card's ``preset``, else :data:`DEFAULT_PRESET`
(as the reference ``"default"`` means the model's pairing)."""
PRESET_NAMES: tuple[str, ...] = tuple(k for k in PRESET_SUMMARIES if k != MODEL_PRESET)
"""The presets' names (the keys of :data:`ronan.inversion.PRESETS`, in that order)."""


def preset_name(preset: str | None, model: Any = None) -> str:
    """The preset that ``preset`` names for ``model``.

    Args:
        preset (str | None): a name of :data:`PRESET_NAMES`, or None, ``""`` or ``"default"``: the
            model's own (``Generator.default_preset``, from its card), else ``"fast"``.
        model (Generator | None): the model the preset is for (None: no model's own).

    Returns:
        str: the preset's name (not checked against :data:`PRESET_NAMES`).
    """
    if preset in (None, "", MODEL_PRESET):
        return getattr(model, "default_preset", None) or DEFAULT_PRESET
    return str(preset)
