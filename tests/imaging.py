"""Test images come from the benchmark corpus generator: deterministic, distinct, real-looking."""

from benchmarks.corpus import encode, jpeg, mixed_corpus, png, synthetic_image

__all__ = ["encode", "jpeg", "mixed_corpus", "png", "synthetic_image"]
