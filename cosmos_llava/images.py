"""Safe image loading: every way a file can be wrong becomes one `ImageError` line.

Pillow's own guard against decompression bombs only warns below 2x its limit and its limit is
global state, so we check the pixel count ourselves from the header, before decoding anything.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ImageError

# 64 megapixels: far above any camera photo a chat needs, far below what exhausts memory when decoded.
DEFAULT_MAX_PIXELS = int(os.environ.get("COSMOS_LLAVA_MAX_IMAGE_PIXELS", 64_000_000))

def load_image(source, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open `source` (a path, raw bytes or a PIL image) and return a fully decoded RGB image."""
    if isinstance(source, Image.Image):
        image, name = source, "image"
    else:
        if isinstance(source, (bytes, bytearray)):
            stream, name = io.BytesIO(source), "uploaded image"
            if not source:
                raise ImageError("uploaded image is empty (0 bytes)")
        else:
            path = _existing_file(source)
            name = str(path)
            stream = path.open("rb")
        try:
            image = _open(stream, name, max_pixels)
        finally:
            if not isinstance(source, (bytes, bytearray)):
                stream.close()
    _check_pixels(image, name, max_pixels)
    if image.mode != "RGB":
        image = _to_rgb(image)
    return image


def to_data_url(image: Image.Image, format: str = "PNG") -> str:
    """A `data:image/...;base64,...` URL of the image, as OpenAI-compatible chat APIs take images."""
    import base64

    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return f"data:image/{format.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def probe_image(source, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Check that a file is a readable image of an allowed size from its header alone (nothing is
    decoded, so it is fast enough to run over a whole dataset); returns (width, height)."""
    path = _existing_file(source)
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            _check_pixels(image, str(path), max_pixels)
            return image.size
    except UnidentifiedImageError:
        raise ImageError(f"not an image file (unrecognised format): {path}") from None
    except OSError as exc:
        raise ImageError(f"image file is truncated or corrupt ({exc}): {path}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit


def _existing_file(source) -> Path:
    path = Path(source)
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file but got a folder: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty (0 bytes): {path}")
    return path


def _open(stream, name: str, max_pixels: int) -> Image.Image:
    # Pillow's own bomb check would raise (or warn) with its global limit; ours is per call.
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        try:
            image = Image.open(stream)
        except UnidentifiedImageError:
            raise ImageError(f"not an image file (unrecognised format): {name}") from None
        _check_pixels(image, name, max_pixels)  # header only: nothing decoded yet
        try:
            image.load()
        except OSError as exc:  # truncated or corrupt data
            raise ImageError(f"image file is truncated or corrupt ({exc}): {name}") from None
        except (ValueError, SyntaxError) as exc:
            raise ImageError(f"image file is corrupt ({exc}): {name}") from None
        return image
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height}): {name}")
    if max_pixels and width * height > max_pixels:
        raise ImageError(
            f"image is too large: {width}x{height} = {width * height:,} pixels, the limit is {max_pixels:,}: {name}"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    # Transparent images go onto white, as a person viewing them would see them.
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
