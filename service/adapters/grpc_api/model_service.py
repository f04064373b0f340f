"""TF Serving's `tensorflow.serving.ModelService`: version status, and the served set replaced at run time."""

from __future__ import annotations

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2, model_service_pb2_grpc, status_pb2

from service.adapters.admin_access import AdminAccess
from service.errors import PermissionDeniedError
from service.adapters.grpc_status import maps_errors_to_status
from service.adapters.tf_serving_messages import model_status_response
from service.dataplane import DataPlane
from service.adapters.grpc_api.prediction_service import requested_version

_ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, dataplane: DataPlane, *, reload_enabled: bool = False, admin: AdminAccess = AdminAccess()) -> None:
        self._dataplane = dataplane
        self._reload_enabled = reload_enabled
        self._admin = admin

    @maps_errors_to_status
    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.aio.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        return model_status_response(self._dataplane.model_status(spec.name, requested_version(spec)))

    @maps_errors_to_status
    async def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.aio.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        """Serve exactly the models of `request.config`; anyone who reaches
        the port could change what is served, so the operator must enable it, and then only callers presenting
        the admin header or a listed client certificate may."""
        if not self._reload_enabled:
            raise PermissionDeniedError(
                "model config reload is disabled on this server; start it with --enable_model_config_reload"
            )
        self._admin.check(context, "HandleReloadConfigRequest")
        await self._dataplane.reload_config(request.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = _ERROR_CODES["OK"].number
        return response
