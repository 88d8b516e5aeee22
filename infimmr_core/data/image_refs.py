"""Turning a row's image value into checked, encoded bytes, or a named reason why not.

Datasets store images as relative paths, raw bytes, `datasets` Image structs ({bytes, path}) or decoded PIL images.
Every image is opened and fully decoded here once, so a truncated or corrupt file is caught at curation, not in the
middle of training; the pixel count is checked from the header first, so a decompression bomb is never decoded.
A row names its image however it likes, so everything about the name is checked before the filesystem sees it (NUL
bytes, absurd lengths, symlink loops, escapes from the root), and a file is never read past `max_bytes`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from infimmr_core.data.images import encode_image


# Defaults of curation.limits.max_image_bytes; longer names than MAX_PATH_CHARS exist on no filesystem we read.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PATH_CHARS = 4096


class ImageRejected(Exception):
    """A row's image cannot be used; `reason` names the kind ("image file not found: a.png")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


def image_bytes(value: Any, root: Path | None, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The encoded bytes behind one image value; paths resolve inside `root` and must stay there."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        embedded = value.get("bytes")
        if embedded is not None and not isinstance(embedded, (bytes, bytearray)):
            # bytes(<int>) would allocate that many zero bytes: only real bytes are bytes.
            raise ImageRejected(f"invalid image value: its bytes are a {type(embedded).__name__}")
        value = embedded if embedded else value.get("path")
    if isinstance(value, (bytes, bytearray)):
        if len(value) > max_bytes:
            raise ImageRejected(f"image too large: {len(value)} bytes (curation.limits.max_image_bytes = {max_bytes})")
        return bytes(value)
    if isinstance(value, Image.Image):
        return encode_image(value)
    if isinstance(value, str) and value:
        return _read_inside(value, root, max_bytes)
    raise ImageRejected(f"invalid image value: {type(value).__name__}")


def _read_inside(ref: str, root: Path | None, max_bytes: int) -> bytes:
    shown = _shown(ref)
    if len(ref) > MAX_PATH_CHARS:
        raise ImageRejected(f"invalid image path: {len(ref)} characters long ({shown})")
    if "\x00" in ref:
        raise ImageRejected(f"invalid image path: it holds a NUL byte ({shown})")
    if root is None:
        raise ImageRejected(f"image path without a dataset root: {shown}")
    try:
        root = root.resolve()
        target = (root / ref).resolve()
        # Absolute paths and ../ escapes would let a dataset row read any file on the machine.
        if Path(ref).is_absolute() or not target.is_relative_to(root):
            raise ImageRejected(f"image path outside the dataset root: {shown}")
        if not target.is_file():  # also refuses devices and FIFOs, which could block or never end
            raise ImageRejected(f"image file not found: {shown}")
        size = target.stat().st_size
        if size > max_bytes:
            raise ImageRejected(f"image too large: {size} bytes (curation.limits.max_image_bytes = {max_bytes})")
        with target.open("rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since
    except (OSError, RuntimeError, ValueError) as err:  # a symlink loop is a RuntimeError; a too-long name an OSError
        raise ImageRejected(f"image path unreadable: {type(err).__name__} ({shown})") from err
    if len(data) > max_bytes:
        raise ImageRejected(f"image too large: over {max_bytes} bytes (curation.limits.max_image_bytes): {shown}")
    return data


def _shown(ref: str) -> str:
    """A path as a reason shows it: printable, and short enough to read."""
    text = ref.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")
    return text if len(text) <= 200 else f"{text[:200]}..."


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
