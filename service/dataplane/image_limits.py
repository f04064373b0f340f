"""Refuse oversized images from their header, before anything is decoded.

A few hundred bytes of JPEG or PNG can declare 60000 x 60000 pixels (a "decompression bomb"): decoding
it would allocate tens of gigabytes. The declared size is read from the header: a JPEG's frame header and
a PNG's IHDR directly, anything else (or anything unusual about those two) by Pillow, which reads only the
header on `Image.open` (decoding is lazy). The model's own TensorFlow decoder runs only on images under
the limit. Bytes Pillow cannot identify pass through: the model's decoder is the authority on what is
decodable and reports its own error.
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
    size = _jpeg_or_png_size(data) or _pillow_size(data, max_pixels)
    if size is None:
        return  # not a header Pillow can read: leave the verdict to the model's decoder
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(width * height, max_pixels, f"{width}x{height}")


def _pillow_size(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) as Pillow reads the header, or None when Pillow cannot identify the bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError as error:  # Pillow's own guard (2 x MAX_IMAGE_PIXELS) fired first
        declared = re.search(r"\((\d+) pixels\)", str(error))
        raise ImageTooLargeError(
            int(declared.group(1)) if declared else None, max_pixels, "over Pillow's own bomb limit"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError):
        return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (the frame header holds the size): C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # no length field
_JPEG_MAX_MARKERS = 64  # a real header has about ten segments before its scan; beyond, Pillow decides


def _jpeg_or_png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as a JPEG's frame header or a PNG's IHDR declares it, read directly; None for any
    other format or anything unusual, which Pillow then reads.

    Why not Pillow for these two: `Image.open` parses every JPEG segment in Python and costs about 140 us
    on a request's critical path right after a batch has cooled the caches (the idle fast path checks on
    the event loop); this reads only the segment lengths up to the frame header.
    """
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    largest: tuple[int, int] | None = None
    position = 2
    for _ in range(_JPEG_MAX_MARKERS):
        if position + 4 > len(data) or data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: the header is over
            return largest
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2:
            return None
        if marker in _JPEG_FRAME_MARKERS:
            if length < 7 or position + 9 > len(data):
                return None
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            if largest is None or width * height > largest[0] * largest[1]:
                largest = (width, height)  # several frame headers: judge by the largest
        position += 2 + length
    return None
