"""Edits an image undergoes on its way to an investigator: JPEG, resizing, crops, noise, filters.

Three views of one edit, all from a spec string such as ``"resize:0.75+jpeg:75"``:

* :meth:`Edit.apply` applies it exactly as the world does (Pillow), on an 8-bit image;
  :func:`apply_batch` does so for a generated batch (quantized to 8 bits first);
* :meth:`Edit.differentiable` is its differentiable twin on tensors, followed by the
  model's default preprocessing, for inversion through the edit;
* :func:`detect` reads what a file reveals (JPEG quality and subsampling, size relative to
  the model, software) and :func:`suggested_edit` turns it into an :class:`Edit`.

:data:`ROBUST_FAMILY` lists the edits of the robust mode.
"""

from ..errors import EditError
from .detect import Detection, detect, suggested_edit
from .spec import EDITS_VERSION, FILTERS, GRAMMAR, ROBUST_FAMILY, Edit, apply_batch, parse_edit

__all__ = [
    "Edit",
    "EditError",
    "parse_edit",
    "apply_batch",
    "Detection",
    "detect",
    "suggested_edit",
    "ROBUST_FAMILY",
    "FILTERS",
    "GRAMMAR",
    "EDITS_VERSION",
]
