"""A fixed corpus of real-looking images, generated deterministically (nothing is downloaded).

Gradients, shapes and sensor-like noise in several sizes, so decode cost and JPEG entropy resemble photos.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

CORPUS_SIZES = ((500, 375), (375, 500), (640, 480), (299, 299), (800, 600), (320, 240))


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


def jpeg_corpus(count: int = 64, first_seed: int = 0) -> list[bytes]:
    """The benchmark corpus: JPEGs of mixed sizes, the same bytes on every machine and run."""
    return [jpeg(first_seed + i, *CORPUS_SIZES[i % len(CORPUS_SIZES)]) for i in range(count)]


def mixed_corpus(count: int, first_seed: int = 0) -> list[bytes]:
    """JPEG and PNG alternating, in several sizes (landscape, portrait, small, large)."""
    sizes = [(500, 375), (375, 500), (64, 48), (299, 299), (640, 480), (128, 200)]
    return [
        (jpeg if i % 2 == 0 else png)(first_seed + i, *sizes[i % len(sizes)]) for i in range(count)
    ]
