"""The pixel-limit header check: the direct JPEG/PNG header reader agrees with Pillow wherever it answers,
is never more lenient than Pillow, and leaves everything unusual to Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from hostile_inputs import BOMBS, UNDECODABLE_IMAGES, VALID_ODD_IMAGES, jpeg_declaring
from imaging import jpeg
from service.dataplane.image_limits import ImageTooLargeError, _jpeg_or_png_size, check_pixel_count

CORPUS = {**VALID_ODD_IMAGES, **UNDECODABLE_IMAGES, **BOMBS}


def pillow_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # whatever Pillow cannot identify
        return None


@pytest.fixture(autouse=True)
def pillow_reads_bombs_too(monkeypatch):
    """So Pillow reports a bomb's declared size instead of refusing it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)


@pytest.mark.parametrize("name", list(CORPUS))
def test_direct_reader_agrees_with_pillow_where_it_answers(name):
    data = CORPUS[name]
    size = _jpeg_or_png_size(data)
    if size is not None:
        assert size == pillow_size(data)


def test_direct_reader_answers_for_plain_jpeg_and_png_and_leaves_other_formats_to_pillow():
    answered = {name for name, data in CORPUS.items() if _jpeg_or_png_size(data) is not None}
    assert {"1x1-jpeg", "progressive-jpeg", "cmyk-jpeg", "16bit-png", "jpeg-60000x60000", "png-1x2000000000"} <= answered
    assert not answered & {"bmp", "webp", "animated-gif", "gif-65535x65535", "tiff-unsupported", "zero-bytes"}


def test_bombs_are_refused_with_their_declared_size():
    with pytest.raises(ImageTooLargeError, match=r"declares 3600000000 pixels \(60000x60000\)"):
        check_pixel_count(BOMBS["jpeg-60000x60000"], 1_000_000)
    with pytest.raises(ImageTooLargeError, match=r"declares 2000000000 pixels \(1x2000000000\)"):
        check_pixel_count(BOMBS["png-1x2000000000"], 1_000_000)
    check_pixel_count(VALID_ODD_IMAGES["exactly-at-pixel-limit"], 1_000_000)


def test_several_frame_headers_are_judged_by_the_largest():
    small = jpeg(3, 48, 48)
    sof = small.index(b"\xff\xc0")
    frame = small[sof : sof + 2 + int.from_bytes(small[sof + 2 : sof + 4], "big")]
    big_frame = bytearray(jpeg_declaring(60000, 60000))
    big_sof = big_frame.index(b"\xff\xc0")
    big_frame = bytes(big_frame[big_sof : big_sof + len(frame)])
    twice = small[:sof] + big_frame + frame + small[sof + len(frame) :]
    assert _jpeg_or_png_size(twice) == (60000, 60000)


def test_mangled_headers_never_crash_and_never_read_smaller_than_pillow():
    base = jpeg(4, 64, 48)
    header_end = base.index(b"\xff\xda")
    for position in range(2, header_end):
        for value in (0x00, 0x01, 0xC0, 0xD9, 0xDA, 0xFF):
            data = base[:position] + bytes([value]) + base[position + 1 :]
            size = _jpeg_or_png_size(data)
            pillow = pillow_size(data)
            if size is not None and pillow is not None:
                assert size[0] * size[1] >= pillow[0] * pillow[1], (position, value)
            try:
                check_pixel_count(data, 1_000)
            except ImageTooLargeError:
                pass
