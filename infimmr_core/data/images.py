"""Image <-> bytes conversion for `Sample.images`.

Samples carry encoded bytes so they hash and serialise identically everywhere; these two
functions are the only place that encodes or decodes them.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

# Only formats whose Pillow encoders write no timestamps and need no extra options to be
# reproducible; anything else could make identical pixels hash differently.
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {"optimize": False, "compress_level": 6},
    "JPEG": {"quality": 95, "subsampling": 0, "optimize": False},
}


def to_rgb(img: Image.Image) -> Image.Image:
    """Return `img` as RGB, flattening any transparency onto white.

    A plain `convert("RGB")` drops alpha and keeps whatever colour hides under transparent
    pixels (often black), which turns black-on-transparent diagrams into a black square.
    """
    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def encode_image(img: Image.Image, format: str = "PNG") -> bytes:
    """Encode `img` as PNG or JPEG bytes that depend only on its pixels.

    The pixels are copied into a fresh RGB image so no metadata from the source (EXIF, ICC
    profile, text chunks, dpi) reaches the encoder.
    """
    fmt = format.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in _SAVE_OPTIONS:
        raise ValueError(f"unsupported image format {format!r}; use one of {sorted(_SAVE_OPTIONS)}")
    rgb = to_rgb(img)
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format=fmt, **_SAVE_OPTIONS[fmt])
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Decode encoded image bytes into a fully loaded RGB image.

    EXIF orientation is applied because hub JPEGs are often stored rotated; the model must
    see the image the way a person would.
    """
    with Image.open(io.BytesIO(data)) as opened:
        # exif_transpose loads the pixels and always returns a new image, so the result
        # stays valid after the file handle closes.
        upright = ImageOps.exif_transpose(opened)
    return to_rgb(upright)
