"""Turning a row's image value into checked, encoded bytes, or a named reason why not.

Datasets store images as relative paths, raw bytes, `datasets` Image structs ({bytes, path}) or decoded PIL images.
Every image is opened and fully decoded here once, so a truncated or corrupt file is caught at curation, not in the
middle of training; the pixel count is checked from the header first, so a decompression bomb is never decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from infimmr_core.data.images import encode_image


class ImageRejected(Exception):
    """A row's image cannot be used; `reason` names the kind ("image file not found: a.png")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


def image_bytes(value: Any, root: Path | None) -> bytes:
    """The encoded bytes behind one image value; paths resolve inside `root` and must stay there."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, Image.Image):
        return encode_image(value)
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, str) and value:
        return _read_inside(value, root)
    raise ImageRejected(f"invalid image value: {type(value).__name__}")


def _read_inside(ref: str, root: Path | None) -> bytes:
    if root is None:
        raise ImageRejected(f"image path without a dataset root: {ref}")
    root = root.resolve()
    target = (root / ref).resolve()
    # Absolute paths and ../ escapes would let a dataset row read any file on the machine.
    if Path(ref).is_absolute() or not target.is_relative_to(root):
        raise ImageRejected(f"image path outside the dataset root: {ref}")
    if not target.is_file():
        raise ImageRejected(f"image file not found: {ref}")
    return target.read_bytes()


def check_image(data: bytes, max_decode_pixels: int) -> ImageInfo:
    """Decode `data` fully (catching truncation and corruption) unless its header claims too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_decode_pixels:
                    raise ImageRejected(f"decompression bomb: {width}x{height} pixels")
                img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected(f"decompression bomb: {err}") from err
    except Image.UnidentifiedImageError as err:
        raise ImageRejected("undecodable image: not an image format Pillow reads") from err
    except (OSError, SyntaxError, ValueError) as err:
        kind = "truncated image" if "truncat" in str(err).lower() else "undecodable image"
        raise ImageRejected(f"{kind}: {err}") from err
    return ImageInfo(width, height)


def image_size(data: bytes) -> ImageInfo:
    """Width and height from the header only (for images already checked)."""
    with Image.open(io.BytesIO(data)) as img:
        return ImageInfo(*img.size)
