"""What adapters hand the data plane and what it answers: one request type per kind, one result type each.

Inputs arrive undecoded (`RequestInputs`): the data plane decodes them only after it has found the model and
the signature, so an unknown model or signature is reported before any fault in the inputs, in TF Serving's
order, whichever protocol carried the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Protocol, Sequence

import numpy as np

from service.tensors.spec import TensorSpec, SignatureSpec

Version = int | str | None  # a number, a version label, or None: the latest


class RequestInputs(Protocol):
    """A request's named input tensors, in its protocol's encoding."""

    @property
    def names(self) -> Collection[str]:
        """The input names the request carries (read without decoding any tensor)."""

    def decode(self, signature: SignatureSpec) -> Mapping[str, np.ndarray]:
        """The tensors as arrays; the signature gives untyped encodings (JSON) their element types."""


@dataclass(slots=True)
class PredictRequest:
    """Run a signature on named tensors. `signature` None means the model's default for these inputs: the
    image signature an image model's input names (`images`, `pixels`), else serving_default."""

    model: str
    version: Version
    signature: str | None
    inputs: RequestInputs
    output_filter: Sequence[str] = ()
    deadline: float | None = None


@dataclass(slots=True)
class ExamplesRequest:
    """Classify or regress serialized tf.Examples (each with the request's context merged in); `examples` is
    called once the model and signature are known."""

    model: str
    version: Version
    signature: str
    examples: Callable[[], Sequence[bytes]]
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class InferenceTask:
    """One task of a MultiInference: a model, a signature and its method name (classify or regress)."""

    model: str
    signature: str
    method_name: str


@dataclass(slots=True)
class MultiInferenceRequest:
    tasks: Sequence[InferenceTask]
    version: Version
    examples: Callable[[], Sequence[bytes]]
    deadline: float | None = None


@dataclass(slots=True)
class PredictResult:
    """Which version and signature computed the answer, and the named outputs."""

    model_name: str
    model_version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


@dataclass(slots=True)
class ClassifyResult:
    """A Classify's answer: `classes` (bytes, [N, k]) and/or `scores` (float32, [N, k]), as the signature has."""

    model_name: str
    model_version: int
    signature_name: str
    classes: np.ndarray | None
    scores: np.ndarray | None

    @property
    def rows(self) -> list[list[tuple[bytes | None, float | None]]]:
        """Per example, its (label, score) pairs; a part the signature lacks is None."""
        table = self.classes if self.classes is not None else self.scores
        assert table is not None
        return [
            [
                (None if self.classes is None else self.classes[row, column],
                 None if self.scores is None else float(self.scores[row, column]))
                for column in range(table.shape[1])
            ]
            for row in range(table.shape[0])
        ]


@dataclass(slots=True)
class RegressResult:
    model_name: str
    model_version: int
    signature_name: str
    values: np.ndarray  # float32 [N]


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One version's state in TF Serving's words (START, LOADING, AVAILABLE, UNLOADING, END)."""

    version: int
    state: str
    error: str | None = None  # why it failed to load
    stuck: bool = False  # serving, but a batch ran past the execution timeout and none has finished since


@dataclass(frozen=True, slots=True)
class ModelDescription:
    """A served version as metadata requests describe it."""

    name: str
    version: int
    available_versions: tuple[int, ...]
    signature_defs: Mapping[str, Any]  # the SignatureDef protos, as TF Serving's GetModelMetadata returns them
    export_metadata: Mapping[str, Any]  # assets/export_metadata.json ({} without one)
    # What a request naming no signature may send and gets back (KServe's view of a model).
    default_inputs: tuple[TensorSpec, ...] = field(default=())
    default_outputs: tuple[TensorSpec, ...] = field(default=())
