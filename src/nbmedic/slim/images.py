"""Images in outputs: their pixel size (PNG headers read without Pillow) and their re-encoding (Pillow).

Pillow is the optional extra ``nbmedic[slim]``; it is imported inside the functions that need it, and
``pillow_missing`` says so in one line when it is not installed.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = ["INSTALL_HINT", "PIXEL_BUDGET", "Encoded", "pillow_missing", "png_size", "reencode"]

PIXEL_BUDGET = 1_500_000  # pixels: a 1600x900 figure fits; larger images are downscaled to fit
MIN_GAIN = 0.10  # a re-encoding must save at least this fraction of the image's bytes
JPEG_QUALITY = 85
Z_RLE = 3  # zlib's run-length strategy (Pillow's PNG ``compress_type``)
MATCHES_PAY = 3  # below 1/3 of its raw size with Z_RLE, an image is worth zlib's default strategy too
INSTALL_HINT = "pip install 'nbmedic[slim]'"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {"L": 0, "RGB": 2, "RGBA": 6}  # 8 bits per channel
_AVERAGE = b"\x03"  # PNG's filter type: each byte less the mean of the byte to its left and the one above


def pillow_missing() -> str | None:
    """None when Pillow can be imported, else the one-line note that says how to install it."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return f"images were not re-encoded: Pillow is not installed ({INSTALL_HINT})"
    return None


def _b64_text(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "".join(value)
    return value if isinstance(value, str) else None


def png_size(value: Any) -> tuple[int, int] | None:
    """(width, height) from a base64 PNG's IHDR chunk, decoding 24 bytes; None if it is not a PNG."""
    text = _b64_text(value)
    if text is None:
        return None
    head = "".join(text[:64].split())[:32]
    try:
        raw = base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 24 or not raw.startswith(_PNG_SIGNATURE) or raw[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", raw[16:24])
    return int(width), int(height)


@dataclass(frozen=True)
class Encoded:
    mime: str
    data: str  # base64
    original: tuple[int, int]  # pixels before
    pixels: tuple[int, int]  # pixels after
    detail: str


def _open(value: Any, budget: int) -> tuple[Any, tuple[int, int]] | None:
    """(Pillow image with its pixels decoded, its size as stored) of a base64 value; None when Pillow cannot
    read it.

    A JPEG over ``budget`` pixels is decoded at 1/2, 1/4 or 1/8 of its size when that still covers the
    budget (``draft``: the decoder skips the detail the downscaling would drop anyway)."""
    from PIL import Image, UnidentifiedImageError

    text = _b64_text(value)
    if text is None:
        return None
    try:
        img = Image.open(io.BytesIO(base64.b64decode(text)))
        if getattr(img, "is_animated", False):
            return None
        width, height = img.size
        if img.format == "JPEG" and width * height > budget:
            factor = (budget / (width * height)) ** 0.5
            img.draft(img.mode, (max(1, int(width * factor)), max(1, int(height * factor))))
        img.load()
    except (OSError, ValueError, binascii.Error, Image.DecompressionBombError, UnidentifiedImageError):
        return None
    return img, (width, height)


def _has_alpha(img: Any) -> bool:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        return bool(alpha.getextrema()[0] < 255)
    return False


def _save(img: Any, fmt: str, **options: Any) -> bytes | None:
    buf = io.BytesIO()
    try:
        img.save(buf, fmt, **options)
    except (OSError, ValueError, KeyError):
        return None
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_average(img: Any) -> bytes | None:
    """A PNG of an 8-bit L, RGB or RGBA image, every row with the Average filter (worked out by Pillow's
    channel operations) and deflated with zlib's run-length strategy; None for anything else (other modes,
    a transparent colour or a colour profile to carry: Pillow's encoder writes those).  Pillow's encoder
    tries five filters on every row, which takes more than half its time; for photo-like pixels one
    filter comes out within 2 % of its size, in under half the time."""
    from PIL import Image, ImageChops

    colour = _PNG_COLOUR_TYPES.get(img.mode)
    width, height = img.size
    if colour is None or width < 2 or height < 2 or "transparency" in img.info or "icc_profile" in img.info:
        return None
    left, up = Image.new(img.mode, img.size), Image.new(img.mode, img.size)  # zeros beyond the edges
    left.paste(img.crop((0, 0, width - 1, height)), (1, 0))
    up.paste(img.crop((0, 0, width, height - 1)), (0, 1))
    mean = ImageChops.add(left, up, scale=2.0)
    del left, up  # each copy of the pixels goes as soon as it has served (several images run at once)
    filtered = ImageChops.subtract_modulo(img, mean).tobytes()
    del mean
    stride = len(filtered) // height
    deflate = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    with memoryview(filtered) as view:
        parts = [data for i in range(0, len(filtered), stride)
                 for data in (deflate.compress(_AVERAGE), deflate.compress(view[i: i + stride])) if data]
    parts.append(deflate.flush())
    idat = b"".join(parts)
    del filtered, parts
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png(img: Any) -> bytes | None:
    """PNG bytes of ``img``: ``_png_average`` (or Pillow's encoder with zlib's run-length strategy), which
    compresses photo-like pixels about as well as Pillow's ``optimize=True`` in a quarter of the time; where
    that leaves the image under a third of its raw size (flat colours, figures, text: where the default
    strategy's longer matches pay), Pillow's default encoding is tried too and the smaller kept.  All of it
    is deterministic, so a dry run and a real run agree byte for byte."""
    fast = _png_average(img) or _save(img, "PNG", compress_type=Z_RLE)
    raw = img.width * img.height * len(img.getbands())
    if fast is not None and len(fast) * MATCHES_PAY >= raw:
        return fast
    found = [data for data in (fast, _save(img, "PNG")) if data is not None]
    return min(found, key=len) if found else None


def _candidates(img: Any, mime: str, *, lossy: bool, scaled: bool) -> list[tuple[str, bytes, str]]:
    """(mime, bytes, how) of each encoding allowed: PNG stays PNG (``_png``; palette only when lossy),
    JPEG stays JPEG; with ``lossy`` JPEG is tried too (when the image has no transparency)."""
    out: list[tuple[str, bytes, str]] = []
    rgb_like = img.mode in ("RGB", "RGBA", "L", "LA", "P")
    if mime == "image/png":
        data = _png(img if rgb_like else img.convert("RGBA"))
        if data is not None:
            out.append(("image/png", data, "PNG"))
        if lossy and img.mode not in ("P", "L", "1"):
            quantized = img.convert("RGBA").quantize(256, method=2) if _has_alpha(img) else \
                img.convert("RGB").quantize(256)
            data = _png(quantized)
            if data is not None:
                out.append(("image/png", data, "PNG, 256 colours"))
    if (mime == "image/jpeg" and (scaled or lossy)) or (lossy and not _has_alpha(img)):
        data = _save(img.convert("RGB"), "JPEG", quality=JPEG_QUALITY, optimize=True)
        if data is not None:
            out.append(("image/jpeg", data, f"JPEG quality {JPEG_QUALITY}"))
    return out


def reencode(mime: str, value: Any, *, lossy: bool, budget: int = PIXEL_BUDGET) -> Encoded | None:
    """The image downscaled to ``budget`` pixels (aspect ratio kept) and re-encoded, when that saves at
    least ``MIN_GAIN`` of its bytes; None otherwise (or when Pillow cannot read it)."""
    from PIL import Image

    text = _b64_text(value)
    opened = _open(text, budget)
    if opened is None or text is None:
        return None
    img, (width, height) = opened
    del opened  # the full-size pixels go as soon as the downscaled ones exist
    scaled = width * height > budget
    if scaled:
        factor = (budget / (width * height)) ** 0.5
        size = (max(1, int(width * factor)), max(1, int(height * factor)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    before = len(text) * 3 // 4
    found = _candidates(img, mime, lossy=lossy, scaled=scaled)
    if not found:
        return None
    new_mime, data, how = min(found, key=lambda c: len(c[1]))
    if len(data) > before * (1 - MIN_GAIN):
        return None
    detail = f"{width}x{height} -> {img.size[0]}x{img.size[1]} {how}" if scaled else f"re-encoded as {how}"
    return Encoded(new_mime, base64.b64encode(data).decode("ascii"), (width, height), img.size, detail)
