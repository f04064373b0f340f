"""TF Serving's model-describing messages (version status, signature metadata), built once for both of its APIs:
gRPC answers them as protos, REST renders the same messages as JSON."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, status_pb2

from service.errors import ModelNotFoundError
from service.models.model_manager import ModelManager, ServedVersion

# GetModelMetadata's key for the version's assets/export_metadata.json (a google.protobuf.Struct), beside
# TF Serving's "signature_def": where its weights came from ("weights": "random" means meaningless labels).
EXPORT_METADATA = "export_metadata"

_State = get_model_status_pb2.ModelVersionStatus.State
_ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name


def model_status_response(
    models: ModelManager, name: str, version: int | str | None
) -> get_model_status_pb2.GetModelStatusResponse:
    """Every version of `name` the server knows (or just `version`, a number or a label), with TF Serving's
    states; shared with REST."""
    versions = models.versions(name)
    if isinstance(version, str):
        version = models.version_for_label(name, version)
    if version is not None:
        versions = [v for v in versions if v.version == version]
        if not versions:  # TF Serving's wording (get_model_status_impl)
            raise ModelNotFoundError(f"Could not find version {version} of model {name}", model_name=name, version=version)
    response = get_model_status_pb2.GetModelStatusResponse()
    for served in versions:
        status = response.model_version_status.add(version=served.version, state=_State.Value(served.state.value))
        status.status.error_code = _ERROR_CODES["OK"].number
        if served.error:
            status.status.error_code = _ERROR_CODES["INTERNAL"].number  # the version failed to load
            status.status.error_message = served.error
        elif served.stuck_since is not None:  # serving, but a model call is stuck: not ready
            status.status.error_code = _ERROR_CODES["UNAVAILABLE"].number
            status.status.error_message = (
                "stuck: a batch ran past --batch_execution_timeout_seconds and none has completed since"
            )
    return response


def response_spec(model_name: str, version: int, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    spec.version.value = version
    return spec


def export_metadata(served: ServedVersion) -> dict[str, Any]:
    """The version's assets/export_metadata.json as read at load ({} when it has none); REST answers it as is,
    under `metadata.export_metadata`."""
    return dict(served.runtime.metadata) if served.runtime is not None else {}


def model_metadata_response(served: ServedVersion) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The version's SignatureDefs as TF Serving returns them, and its export metadata when it has one (so
    a client can see, for instance, that the version has seeded random weights); shared with REST."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for signature_name, signature_def in served.runtime.signature_defs.items():  # type: ignore[union-attr]
        signature_map.signature_def[signature_name].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse(
        model_spec=response_spec(served.name, served.version, "")
    )
    response.metadata["signature_def"].Pack(signature_map)
    exported = export_metadata(served)
    if exported:
        response.metadata[EXPORT_METADATA].Pack(json_format.ParseDict(exported, struct_pb2.Struct()))
    return response
