"""TF Serving's model-describing messages (version status, signature metadata), built once for both of its APIs:
gRPC answers them as protos, REST renders the same messages as JSON."""

from __future__ import annotations

from typing import Sequence

from google.protobuf import json_format, struct_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, status_pb2

from service.dataplane import ModelDescription, VersionStatus

# GetModelMetadata's key for the version's assets/export_metadata.json (a google.protobuf.Struct), beside
# TF Serving's "signature_def": where its weights came from ("weights": "random" means meaningless labels).
EXPORT_METADATA = "export_metadata"

_State = get_model_status_pb2.ModelVersionStatus.State
_ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name


def model_status_response(versions: Sequence[VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    """The versions with TF Serving's states; a version that failed to load carries its error, a stuck one
    UNAVAILABLE."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in versions:
        status = response.model_version_status.add(version=version.version, state=_State.Value(version.state))
        status.status.error_code = _ERROR_CODES["OK"].number
        if version.error:
            status.status.error_code = _ERROR_CODES["INTERNAL"].number  # the version failed to load
            status.status.error_message = version.error
        elif version.stuck:  # serving, but a model call is stuck: not ready
            status.status.error_code = _ERROR_CODES["UNAVAILABLE"].number
            status.status.error_message = (
                "stuck: a batch ran past --batch_execution_timeout_seconds and none has completed since"
            )
    return response


def response_spec(model_name: str, version: int, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    spec.version.value = version
    return spec


def model_metadata_response(model: ModelDescription) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The version's SignatureDefs as TF Serving returns them, and its export metadata when it has one (so
    a client can see, for instance, that the version has seeded random weights)."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for signature_name, signature_def in model.signature_defs.items():
        signature_map.signature_def[signature_name].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=response_spec(model.name, model.version, ""))
    response.metadata["signature_def"].Pack(signature_map)
    if model.export_metadata:
        response.metadata[EXPORT_METADATA].Pack(json_format.ParseDict(dict(model.export_metadata), struct_pb2.Struct()))
    return response
