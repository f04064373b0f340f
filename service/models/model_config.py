"""Which models to serve: `--model_name`/`--model_base_path`, or TF Serving's `--model_config_file`.

The file is TF Serving's text-format `ModelServerConfig` (`model_config_list { config { name, base_path,
model_platform, model_version_policy, version_labels } }`), parsed with the proto tensorflow-serving-api ships, so existing
TF Serving config files work unchanged and a typo is reported by protobuf with its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

SUPPORTED_PLATFORMS = ("", "tensorflow")


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: which of the versions on disk should be served."""

    kind: str = "latest"  # "latest" | "all" | "specific"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def aspired(self, on_disk: list[int]) -> set[int]:
        """The versions to serve, given the numeric versions found on disk (ascending)."""
        if self.kind == "all":
            return set(on_disk)
        if self.kind == "specific":
            return set(on_disk) & set(self.versions)
        return set(on_disk[-self.num_versions:]) if on_disk else set()

    def describe(self) -> str:
        if self.kind == "specific":
            return f"specific {list(self.versions)}"
        return "all" if self.kind == "all" else f"latest {self.num_versions}"


@dataclass(frozen=True)
class ModelSource:
    """One model to serve: its name, the directory of numeric versions, and which versions to serve."""

    name: str
    base_path: Path
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: tuple[tuple[str, int], ...] = ()  # version_labels: ("stable", 1), ("canary", 2)

    def version_for_label(self, label: str) -> int | None:
        return next((version for name, version in self.labels if name == label), None)


def parse_model_config(text: str, relative_to: Path | None = None) -> tuple[ModelSource, ...]:
    """Parse a ModelServerConfig text proto; raises ValueError naming the problem."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:  # TF Serving's words: deployment tooling greps for them
        raise ValueError(f"Error parsing text-format tensorflow.serving.ModelServerConfig: {error}") from None
    return sources_from_config(config, relative_to)


def sources_from_config(
    config: model_server_config_pb2.ModelServerConfig, relative_to: Path | None = None
) -> tuple[ModelSource, ...]:
    """The models a ModelServerConfig names (from a file, or from HandleReloadConfigRequest); raises ValueError."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("the file must hold a model_config_list (custom_model_config is not supported)")
    sources: list[ModelSource] = []
    for index, model in enumerate(config.model_config_list.config):
        where = f"config #{index + 1}" + (f" ('{model.name}')" if model.name else "")
        if not model.name:
            raise ValueError(f"{where}: name is required")
        if not model.base_path:
            raise ValueError(f"{where}: base_path is required")
        if model.model_platform not in SUPPORTED_PLATFORMS:
            raise ValueError(f"{where}: model_platform '{model.model_platform}' is not served here (use 'tensorflow')")
        if any(source.name == model.name for source in sources):
            raise ValueError(f"{where}: model name '{model.name}' appears twice")
        base_path = Path(model.base_path).expanduser()
        if not base_path.is_absolute() and relative_to is not None:
            base_path = relative_to / base_path
        labels = tuple(sorted(model.version_labels.items()))
        if any(not label for label, _ in labels):
            raise ValueError(f"{where}: a version label needs a name")
        sources.append(ModelSource(model.name, base_path.resolve(), _policy(model, where), labels))
    if not sources:
        raise ValueError("model_config_list names no model")
    return tuple(sources)


def parse_model_config_file(path: Path) -> tuple[ModelSource, ...]:
    """Relative base paths are taken relative to the current directory, as tensorflow_model_server does."""
    return parse_model_config(path.read_text(encoding="utf-8"))


def _policy(model: model_server_config_pb2.ModelConfig, where: str) -> VersionPolicy:
    if not model.HasField("model_version_policy"):
        return VersionPolicy()
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy(kind="all")
    if kind == "specific":
        if not policy.specific.versions:
            raise ValueError(f"{where}: model_version_policy.specific lists no version")
        return VersionPolicy(kind="specific", versions=tuple(sorted(set(policy.specific.versions))))
    if kind == "latest":
        count = policy.latest.num_versions or 1
        if count < 1:
            raise ValueError(f"{where}: model_version_policy.latest.num_versions must be >= 1")
        return VersionPolicy(kind="latest", num_versions=count)
    return VersionPolicy()
