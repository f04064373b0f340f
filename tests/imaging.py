"""Deterministic, distinct, real-looking test images (no downloads): gradients, shapes and noise."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def synthetic_image(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            (x * rng.uniform(0.2, 1.0) + y * rng.uniform(0, 0.6) + rng.uniform(0, 255)) % 256,
            (y * rng.uniform(0.2, 1.0) + rng.uniform(0, 255)) % 256,
            (np.hypot(x - width / 2, y - height / 2) * rng.uniform(0.5, 2.0)) % 256,
        ],
        axis=-1,
    )
    noise = rng.normal(0, 12, size=base.shape)
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1, y1 = x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=color)
    return image


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def jpeg(seed: int, width: int = 320, height: int = 240) -> bytes:
    return encode(synthetic_image(seed, width, height), "JPEG")


def png(seed: int, width: int = 320, height: int = 240) -> bytes:
    return encode(synthetic_image(seed, width, height), "PNG")


def mixed_corpus(count: int, first_seed: int = 0) -> list[bytes]:
    """JPEG and PNG alternating, in several sizes (landscape, portrait, small, large)."""
    sizes = [(500, 375), (375, 500), (64, 48), (299, 299), (640, 480), (128, 200)]
    images = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        maker = jpeg if i % 2 == 0 else png
        images.append(maker(first_seed + i, width, height))
    return images
