"""Which signature a request runs and which path takes it: the rule, written once for every protocol.

A model with the image contract (docs/architecture.md) takes its request-level image signatures
(`predict_images`, `serving_default`, `classify_pixels`) through the image path: decode pool, idle fast path,
one batch item per image. Every other signature of every model runs on its named tensors, one batch item per
row. A request that names no signature gets the model's default for its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from service.errors import FailedPreconditionError, InvalidInputError
from service.models.served_version import ServedVersion
from service.runtime.signatures import (
    DEFAULT_SIGNATURE,
    ENCODED_IMAGES_SIGNATURE,
    IMAGE_INPUT_BY_SIGNATURE,
    PIXELS_SIGNATURE,
)
from service.tensors.dtypes import STRING
from service.tensors.spec import PREDICT_METHOD, SignatureSpec, TensorSpec


@dataclass(frozen=True, slots=True)
class Route:
    spec: SignatureSpec  # what the request's inputs are decoded and checked against
    image_input: str | None  # the image path's one input; None: the signature runs on its named tensors


def route(served: ServedVersion, signature: str | None, input_names: Collection[str]) -> Route:
    """The route of a request naming `signature` (None: the default for `input_names`)."""
    runtime = served.runtime
    image_contract = runtime.image_contract  # type: ignore[union-attr]
    if signature is None:
        signature = _default_signature(served, input_names) if image_contract else DEFAULT_SIGNATURE
    if image_contract and signature in IMAGE_INPUT_BY_SIGNATURE:
        return Route(image_signature_spec(served, signature), IMAGE_INPUT_BY_SIGNATURE[signature])
    return Route(signature_spec(served, signature), None)


def signature_spec(served: ServedVersion, name: str) -> SignatureSpec:
    """The signature a request names; TF Serving's FAILED_PRECONDITION wording when the model lacks it."""
    runtime = served.runtime
    spec = runtime.signatures.get(name)  # type: ignore[union-attr]
    if spec is None:
        why = runtime.unusable_signatures.get(name)  # type: ignore[union-attr]
        if why is not None:
            raise InvalidInputError(why)
        raise FailedPreconditionError(f'Serving signature key "{name}" not found.')
    return spec


def image_signature_spec(served: ServedVersion, signature: str) -> SignatureSpec:
    """A request-level image signature as the image path serves it, whether or not the model has it
    (`predict_images` is optional): its one input, and `classify_pixels`' outputs."""
    pixels = served.runtime.signatures[PIXELS_SIGNATURE]  # type: ignore[union-attr]
    if signature == PIXELS_SIGNATURE:
        return pixels
    name = IMAGE_INPUT_BY_SIGNATURE[signature]
    return SignatureSpec(signature, PREDICT_METHOD, {name: TensorSpec(name, STRING, (-1,))}, pixels.outputs)


def default_interface(served: ServedVersion) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The inputs a request naming no signature may send, and the outputs it gets: an image model's
    `images` or `pixels`, else serving_default's (none when the model lacks it)."""
    runtime = served.runtime
    if runtime.image_contract:  # type: ignore[union-attr]
        specs = [image_signature_spec(served, name) for name in (ENCODED_IMAGES_SIGNATURE, PIXELS_SIGNATURE)]
        return tuple(t for spec in specs for t in spec.inputs.values()), tuple(specs[1].outputs.values())
    spec = runtime.signatures.get(DEFAULT_SIGNATURE)  # type: ignore[union-attr]
    if spec is None:
        return (), ()
    return tuple(spec.inputs.values()), tuple(spec.outputs.values())


def _default_signature(served: ServedVersion, input_names: Collection[str]) -> str:
    names = set(input_names)
    for signature in (ENCODED_IMAGES_SIGNATURE, PIXELS_SIGNATURE):
        if names == {IMAGE_INPUT_BY_SIGNATURE[signature]}:
            return signature
    shape = ", ".join(map(str, served.runtime.input_shape))  # type: ignore[union-attr]
    raise InvalidInputError(
        f"model '{served.name}' takes exactly one input: 'images' (encoded images [N]) or 'pixels' "
        f"(float32 [N, {shape}]); got {sorted(names)}"
    )


