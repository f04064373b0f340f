"""Refuse oversized images from their header, before anything is decoded.

A few hundred bytes of JPEG or PNG can declare 60000 x 60000 pixels (a "decompression bomb"): decoding
it would allocate tens of gigabytes. Pillow reads only the header on `Image.open` (decoding is lazy), so
the declared size is known at the cost of parsing a few bytes; the model's own TensorFlow decoder runs
only on images under the limit. Bytes Pillow cannot identify pass through: the model's decoder is the
authority on what is decodable and reports its own error.
"""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image, UnidentifiedImageError


class ImageTooLargeError(ValueError):
    """The image declares more pixels than the server accepts."""

    def __init__(self, pixels: int | None, limit: int, detail: str = "") -> None:
        self.pixels = pixels
        self.limit = limit
        declared = f"declares {pixels} pixels ({detail})" if pixels is not None else f"is too large ({detail})"
        super().__init__(f"{declared}, more than the {limit} this server decodes (--max_image_pixels)")


def check_pixel_count(data: bytes, max_pixels: int) -> None:
    """Raise ImageTooLargeError if the header declares more than `max_pixels` pixels; reads the header only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:  # Pillow's own guard (2 x MAX_IMAGE_PIXELS) fired first
        declared = re.search(r"\((\d+) pixels\)", str(error))
        raise ImageTooLargeError(
            int(declared.group(1)) if declared else None, max_pixels, "over Pillow's own bomb limit"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError):
        return  # not a header Pillow can read: leave the verdict to the model's decoder
    if width * height > max_pixels:
        raise ImageTooLargeError(width * height, max_pixels, f"{width}x{height}")
