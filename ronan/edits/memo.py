"""The last results of work a request repeats once per model (a file's edit detection), shared by
threads: :class:`Memo`."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from typing import Any

from PIL import Image


class Memo:
    """A bounded, thread-safe cache: the ``size`` (default 64) most recently added results, the oldest
    dropped first. Two threads may compute the same key at once; both get a correct result."""

    def __init__(self, size: int = 64):
        self.size = size
        self._lock = threading.Lock()
        self._items: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The result stored for ``key``, else ``compute()`` stored and returned."""
        with self._lock:
            if key in self._items:
                return self._items[key]
        value = compute()
        with self._lock:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value
        return value


def pixels_key(image: Image.Image) -> str:
    """A key for ``image``'s pixels: SHA-256 of its mode, size and bytes."""
    return hashlib.sha256(f"{image.mode} {image.size}".encode() + image.tobytes()).hexdigest()
