"""Lossy WebP: what a file's VP8 header says about its quality, and the round trip with Pillow.

A lossy WebP stores no quality, but its VP8 frame header holds the quantizer index (0..127) of each
of up to 4 segments. libwebp (the encoder Pillow ships, default settings: spatial noise shaping 50)
sets segment ``s``'s index to ``floor(127 (1 - c ** (1 - amp * alpha_s)))`` with
``c = QualityToCompression(quality / 100)``, ``amp = 0.9 * 50 / 100 / 128`` and ``alpha_s`` in
[-127, 127] from the image's content; the most and the least compressible segments' alphas differ by
255 before clipping, so one of them sits at -127 or +127. :func:`consistent_qualities` lists the
qualities for which the file's largest index is the one of alpha -127 or its smallest the one of
alpha +127; :func:`estimate_quality` keeps the candidate whose re-encoding of the decoded pixels
gives the file's indices most closely (the content's alphas, approximately). A file with one
segment (flat or noise-like content) reveals no alpha: its candidates are the qualities whose
re-encoding of the pixels gives its index.

Measured (Pillow 12.3, libwebp 1.6; benchmarks/RESULTS.md, "Lossy WebP: its quality read from the
file"): on 1,890 held-out files (30 pictures and generated images at 28, 64 and 256 px, qualities
0-100 in steps of 5) the true quality was among the candidates for every file (span median 3,
90th percentile 12); the estimate was exact on 71%, within 2 on 94%, at most 19 off, the larger
errors on images of few 16x16 blocks (28 and 64 px). Verdicts therefore take their bounds over the
candidates (:func:`ronan.edits.stand_in.quality_span`), not the estimate alone.

:func:`roundtrip` is ``save(WEBP, quality=Q)`` then ``open`` with Pillow (lossy, 4:2:0 chroma).
"""

from __future__ import annotations

import io
import struct

import numpy as np
import torch
from PIL import Image

from ..images import to_pil
from .memo import Memo, pixels_key

SNS_AMPLITUDE = 0.9 * 50 / 100 / 128
"""libwebp's ``SNS_TO_DQ * sns_strength / 100 / 128`` at its default ``sns_strength`` 50."""


def _chunk(data: bytes, tag: bytes) -> bytes | None:
    """The payload of the first RIFF chunk ``tag`` of a WebP file, looking into the first frame of an
    animation (None when absent or not a WebP)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    return _find(data, 12, tag)


def _find(data: bytes, pos: int, tag: bytes) -> bytes | None:
    while pos + 8 <= len(data):
        name, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if name == tag:
            return data[pos + 8 : pos + 8 + size]
        if name == b"ANMF":  # an animation frame: 16 bytes of placement, then its image chunks
            return _find(data[: pos + 8 + size], pos + 24, tag)
        pos += 8 + size + (size & 1)
    return None


def lossless(data: bytes) -> bool | None:
    """True for a VP8L (lossless) WebP, False for VP8 (lossy), None if neither chunk is found."""
    if _chunk(data, b"VP8L") is not None:
        return True
    return False if _chunk(data, b"VP8 ") is not None else None


class _BoolDecoder:
    """VP8's boolean entropy decoder (RFC 6386, section 7.3), enough for the frame header."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 2
        self.value, self.range, self.bits = (data[0] << 8) | data[1], 255, 0

    def bit(self, prob: int = 128) -> int:
        split = 1 + (((self.range - 1) * prob) >> 8)
        if self.value >= split << 8:
            out, self.range, self.value = 1, self.range - split, self.value - (split << 8)
        else:
            out, self.range = 0, split
        while self.range < 128:
            self.value, self.range, self.bits = self.value << 1, self.range << 1, self.bits + 1
            if self.bits == 8:
                self.bits = 0
                if self.pos < len(self.data):
                    self.value |= self.data[self.pos]
                self.pos += 1
        return out

    def literal(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def optional_signed(self, n: int) -> int:
        """A flag, then (if set) an ``n``-bit magnitude and a sign; 0 when the flag is clear."""
        if not self.bit():
            return 0
        v = self.literal(n)
        return -v if self.bit() else v


def quantizers(data: bytes) -> list[int] | None:
    """The quantizer indices (0..127) of a lossy WebP's segments, from its VP8 key-frame header: one
    per segment where the header sets them absolutely, else the frame's base index alone.

    Args:
        data (bytes): the file's bytes (its start suffices: the header is a few dozen bytes into the
            VP8 chunk).

    Returns:
        list[int] of 1..4 indices, or None: no VP8 chunk (lossless, not WebP; an animation's first
        frame is read), not a key frame, or a header cut off.
    """
    vp8 = _chunk(data, b"VP8 ")
    if vp8 is None or len(vp8) < 12 or vp8[0] & 1 or vp8[3:6] != b"\x9d\x01\x2a":
        return None
    d = _BoolDecoder(vp8[10:])
    d.literal(2)  # colour space, clamping type
    segments = None
    if d.bit():  # segmentation enabled
        update_map, update_data = d.bit(), d.bit()
        if update_data:
            absolute = d.bit()
            q = [d.optional_signed(7) for _ in range(4)]
            [d.optional_signed(6) for _ in range(4)]  # loop filter levels
            segments = q if absolute else None
        if update_map:
            [d.literal(8) if d.bit() else None for _ in range(3)]
    d.literal(1 + 6 + 3)  # filter type, level, sharpness
    if d.bit() and d.bit():  # loop filter deltas, updated
        [d.optional_signed(6) for _ in range(8)]
    d.literal(2)  # DCT partitions
    base = d.literal(7)
    if d.pos > len(vp8) - 10:
        return None
    return [min(127, max(0, v)) for v in segments] if segments else [base]


def _index(quality: int, alpha: int) -> int:
    """libwebp's quantizer index at ``quality`` (0..100) for a segment of ``alpha`` (-127..127)."""
    q = quality / 100
    linear = q * 2 / 3 if q < 0.75 else 2 * q - 1
    c = linear ** (1 / 3)
    return min(127, max(0, int(127 * (1 - c ** (1 - SNS_AMPLITUDE * alpha)))))


def consistent_qualities(indices: list[int]) -> tuple[list[int], int]:
    """Qualities (0..100) at which libwebp's defaults give these segment indices (see the module
    docstring), and how far the nearest one is off (0: exactly consistent; else the smallest index
    difference, for files another encoder or other settings made; the list then holds the nearest)."""
    hi, lo = max(indices), min(indices)
    off = {q: min(abs(_index(q, -127) - hi), abs(_index(q, 127) - lo)) for q in range(101)}
    best = min(off.values())
    return [q for q in range(101) if off[q] == best], best


def roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` (8-bit L or RGB) saved as a lossy WebP at ``quality`` (0..100) and read back, in
    its own mode."""
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=quality)
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out.convert(image.mode)


def _reencoded(image: Image.Image, quality: int) -> list[int]:
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=quality)
    return quantizers(buf.getvalue()) or []


def _first_at_most(image: Image.Image, index: int) -> int:
    """The lowest quality (0..101) whose re-encoding of ``image`` has a base index at most ``index``
    (the base index does not rise with the quality; 101: none)."""
    lo, hi = 0, 101
    while lo < hi:
        mid = (lo + hi) // 2
        if (_reencoded(image, mid) or [127])[0] <= index:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _one_segment_candidates(index: int, image: Image.Image) -> tuple[list[int], int]:
    """Qualities whose re-encoding of ``image`` gives the base ``index`` of a file with one segment
    (whose alpha the header does not reveal), and the mismatch (0, or the nearest index's distance)."""
    first, after = _first_at_most(image, index), _first_at_most(image, index - 1)
    if first < after:
        return list(range(first, after)), 0
    q = min(first, 100)
    return [q], abs((_reencoded(image, q) or [127])[0] - index)


def estimate_quality(data: bytes, image: Image.Image | None) -> tuple[int, int, list[int]] | None:
    """The libwebp quality a lossy WebP was most likely saved at, and the index mismatch (0 =
    consistent with libwebp's defaults).

    With several segments, the candidates are :func:`consistent_qualities`; with one (flat or
    noise-like images, whose segment's alpha the header does not reveal), the qualities whose
    re-encoding of the pixels gives the file's index (a bisection: the index falls with the quality).

    Args:
        data (bytes): the file's bytes (at least its headers).
        image (PIL.Image.Image | None): its decoded pixels (8-bit L or RGB), re-encoded at each
            candidate quality to choose among them; None: the middle candidate (one segment: unknown).

    Returns:
        ``(quality, mismatch, candidates)`` (the file's quality is among ``candidates``, sorted, where
        it was made by libwebp's defaults) or None when the header gives no quantizers
        (:func:`quantizers`), or one segment and no pixels.
    """
    indices = quantizers(data)
    if indices is None or (len(indices) == 1 and image is None):
        return None
    key = (tuple(indices), None if image is None else pixels_key(image))
    found = _ESTIMATES.get(key, lambda: _estimate(indices, image))
    return found[0], found[1], list(found[2])


_ESTIMATES = Memo()
"""The last 64 estimates, by quantizers and pixels: one request detects a file once per model it is
checked against, and each estimate re-encodes the pixels (~0.5 s per encoding at 2048x2048)."""


def _estimate(indices: list[int], image: Image.Image | None) -> tuple[int, int, list[int]]:
    """:func:`estimate_quality` of a file whose header gives ``indices`` (not cached)."""
    if len(indices) == 1 and image is not None:
        candidates, mismatch = _one_segment_candidates(indices[0], image)
    else:
        candidates, mismatch = consistent_qualities(indices)
    if image is None or len(candidates) == 1:
        return candidates[len(candidates) // 2], mismatch, candidates
    want = sorted(indices, reverse=True)

    def distance(quality: int) -> int:
        got = sorted(_reencoded(image, quality), reverse=True)
        return sum(abs(a - b) for a, b in zip(want, got)) + 127 * abs(len(want) - len(got))

    scores = [distance(q) for q in candidates]
    tied = [q for q, s in zip(candidates, scores) if s == min(scores)]
    return tied[len(tied) // 2], mismatch, candidates


def webp_roundtrip(v: torch.Tensor, quality: int) -> torch.Tensor:
    """:func:`roundtrip` on levels ``Tensor[B, C, H, W]`` in [0, 255] (C = 1 or 3): the exact pixels
    in the forward pass, the identity in the backward pass (straight-through: there is no
    differentiable WebP codec here)."""
    out = [np.asarray(roundtrip(to_pil(im / 255.0), quality), dtype=np.float64) for im in v]
    exact = torch.from_numpy(np.stack([a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in out]))
    return v + (exact.to(device=v.device, dtype=v.dtype) - v).detach()
