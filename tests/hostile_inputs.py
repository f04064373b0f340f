"""Hostile and odd inputs for the corpus test and the fuzzers: malformed images and decompression bombs."""

from __future__ import annotations

import io
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from imaging import encode, jpeg, png, synthetic_image
from model_corpus import write_half_plus_two_tf1, write_model_config, write_multi_io
from server_process import ServerProcess


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF header is patched to declare width x height (a decompression bomb)."""
    data = bytearray(jpeg(11, 48, 48))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose IHDR declares width x height, with a correct CRC (so only the size is wrong)."""
    data = bytearray(png(12, 48, 48))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(save(synthetic_image(13, 48, 48), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def animated_gif() -> tuple[bytes, bytes]:
    """(a two-frame GIF, a one-frame GIF of its first frame)."""
    first, second = synthetic_image(21, 64, 48), synthetic_image(22, 64, 48)
    animated = save(first, "GIF", save_all=True, append_images=[second], duration=50, loop=0)
    with Image.open(io.BytesIO(animated)) as image:
        image.seek(0)
        still = save(image.convert("RGB"), "GIF")
    return animated, still


def sixteen_bit_png() -> bytes:
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    return save(Image.fromarray(ramp), "PNG")


def corrupt_middle(data: bytes, at: float = 0.4, length: int = 200) -> bytes:
    start = int(len(data) * at)
    return data[:start] + bytes(length) + data[start + length :]


BASE = synthetic_image(30, 64, 48)

VALID_ODD_IMAGES: dict[str, bytes] = {
    "1x1-png": save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    "1x1-jpeg": save(Image.new("RGB", (1, 1), (10, 200, 10)), "JPEG"),
    "1x2000-png": save(Image.new("RGB", (1, 2000), (9, 9, 9)), "PNG"),
    "3000x1-png": save(Image.new("RGB", (3000, 1), (9, 9, 9)), "PNG"),
    "grayscale-jpeg": save(BASE.convert("L"), "JPEG"),
    "grayscale-png": save(BASE.convert("L"), "PNG"),
    "gray-alpha-png": save(BASE.convert("LA"), "PNG"),
    "cmyk-jpeg": save(BASE.convert("CMYK"), "JPEG"),
    "16bit-png": sixteen_bit_png(),
    "rgba-png": save(BASE.convert("RGBA"), "PNG"),
    "palette-png": save(BASE.convert("P"), "PNG"),
    "1bit-png": save(BASE.convert("1"), "PNG"),
    "progressive-jpeg": save(BASE, "JPEG", progressive=True),
    "bmp": save(BASE, "BMP"),
    "webp": save(BASE, "WEBP"),
    "animated-gif": animated_gif()[0],
    "jpeg-corrupt-entropy-data": corrupt_middle(jpeg(1), at=0.6),  # libjpeg recovers: a garbled image
    "exactly-at-pixel-limit": encode(synthetic_image(31, 1000, 1000), "JPEG"),
}

UNDECODABLE_IMAGES: dict[str, bytes] = {
    "zero-bytes": b"",
    "text": b"this is not an image",
    "html": b"<html><body>hello</body></html>",
    "json": b'{"image": "cat.jpg"}',
    "file-path": b"/etc/passwd",
    "null-bytes": bytes(1000),
    "random-1k": np.random.default_rng(1).bytes(1024),
    "random-64k": np.random.default_rng(2).bytes(65536),
    "jpeg-soi-only": b"\xff\xd8",
    "jpeg-header-only": jpeg(1)[:100],
    "jpeg-truncated-half": jpeg(1)[: len(jpeg(1)) // 2],
    "jpeg-corrupt-header": jpeg(1)[:600] + bytes(200) + jpeg(1)[800:],
    "png-signature-only": b"\x89PNG\r\n\x1a\n",
    "png-truncated-half": png(1)[: len(png(1)) // 2],
    "png-corrupt-idat": corrupt_middle(png(1), at=0.5),
    "gif-header-only": b"GIF89a",
    "bmp-header-only": save(BASE, "BMP")[:30],
    "tiff-unsupported": save(BASE, "TIFF"),
    "ico-unsupported": save(BASE, "ICO"),
}

BOMBS: dict[str, bytes] = {
    "jpeg-60000x60000": jpeg_declaring(60000, 60000),
    "png-50000x50000": png_declaring(50000, 50000),
    "png-1x2000000000": png_declaring(1, 2_000_000_000),
    "png-10000x10000": png_declaring(10000, 10000),
    "gif-65535x65535": gif_declaring(65535, 65535),
    "jpeg-just-over-limit": encode(synthetic_image(32, 1001, 1000), "JPEG"),
}


def case_params(cases: dict) -> list:
    """Corpus case names as pytest params; a case naming a known bug (`case.bug`) is a strict xfail."""
    return [
        pytest.param(name, marks=pytest.mark.xfail(raises=AssertionError, strict=True, reason=case.bug))
        if case.bug else name
        for name, case in cases.items()
    ]


def three_model_server(root: Path, tiny_model_base: Path, *flags: str) -> ServerProcess:
    """The server the hostile REST and KServe corpora attack: an image model (`tiny`), a TF1 graph with
    predict, classify and regress signatures (`half_plus_two`) and a multi-input model of many dtypes
    (`multi_io`), served from one model config file with batching on."""
    bases = {"tiny": tiny_model_base, "half_plus_two": root / "half_plus_two", "multi_io": root / "multi_io"}
    write_half_plus_two_tf1(bases["half_plus_two"])
    write_multi_io(bases["multi_io"])
    config = write_model_config(root / "models.config", bases)
    return ServerProcess(
        bases["half_plus_two"], f"--model_config_file={config}", "--enable_batching=true", "--max_batch_size=8",
        *flags, model_name="ignored",
    )


def errors_logged_while(server: ServerProcess, action: Callable[[], None]) -> list[str]:
    """Run `action` (send a corpus); the ERROR lines and tracebacks the server logged meanwhile, read once its
    log has stopped growing before and after."""
    def settled() -> int:
        count = -1
        while count != len(server.log_lines):
            count = len(server.log_lines)
            time.sleep(0.3)
        return count

    start = settled()
    action()
    lines = server.log_lines[start : settled()]
    return [line for line in lines if re.search(r'"level": "(ERROR|CRITICAL)"|Traceback', line)]
