"""User-facing errors. Each carries a one-line, human message; no traceback is shown for them."""


class RonanError(Exception):
    """Base class of errors caused by user input or environment, not by a bug."""


class ImageError(RonanError):
    """An image could not be read or is outside the accepted limits."""


class ModelUnavailable(RonanError):
    """A model is unknown, or its weights are missing or do not match their card."""


class DeviceUnavailable(RonanError, ValueError):
    """A device (``cuda``, ``mps``...) is unknown or not present on this machine."""


class DistanceUnavailable(RonanError):
    """A distance cannot run here (e.g. LPIPS backbone weights are missing)."""


class CalibrationError(RonanError):
    """A belonging distribution is missing, invalid or does not match the request."""


class Cancelled(RonanError):
    """A run was stopped by the user before it finished."""


class CardError(ModelUnavailable):
    """A model card is invalid (one line naming the card and the field), or a model name is unsafe."""


class EditError(RonanError, ValueError):
    """An edit spec (``jpeg:75``, ``resize:0.5+jpeg:90``...) is not valid."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters (default 200), or its
    type's name when the message is empty (``str(IndexError())`` is ``""``): for one-line errors."""
    lines = str(e).strip().splitlines()
    return lines[0][:limit] if lines else type(e).__name__


def described(e: BaseException, limit: int = 160) -> str:
    """``"Type: first line"`` of an exception (:func:`first_line`), or ``"Type"`` without a message."""
    line = first_line(e, limit)
    return line if line == type(e).__name__ else f"{type(e).__name__}: {line}"
