"""KServe v2 / Open Inference Protocol over HTTP, on the REST port, over the same data plane as every protocol.

Routes as KServe's REST spec and Triton serve them: `GET /v2/health/live`, `/v2/health/ready`, `/v2` (server
metadata), `/v2/models/{name}[/versions/{v}]` (model metadata) and `.../ready`, `POST .../infer`. Tensors
travel as JSON `data` or, with Triton's binary tensor data extension, as raw bytes after the JSON header
(`Inference-Header-Content-Length`), so `tritonclient.http` works with `binary_data=True` and `False`. The
request parameter `signature_name` picks a signature (as on gRPC), `timeout` (microseconds, Triton's)
bounds the request, else `--rest_api_timeout_in_ms`. Failures answer `{"error": ...}` with the HTTP status
Triton gives the same fault.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from service.adapters.http_support import observed, read_body
from service.adapters.kserve_api import v2_tensors as v2
from service.adapters.kserve_api.protocol import PLATFORM, SERVER_NAME, parse_version, server_version, worded_for_triton
from service.dataplane import DataPlane, PredictRequest
from service.errors import InvalidInputError, ModelNotFoundError, ServingError, canonical_code
from service.observability.observation import RequestObserver
from service.tensors.spec import SignatureSpec

_log = logging.getLogger(__name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]

# The HTTP status Triton answers for each fault (HttpCodeFromError); RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED
# are UNAVAILABLE there (a full queue, an expired request timeout).
HTTP_STATUS_BY_CODE: dict[str, int] = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNIMPLEMENTED": 501,
    "RESOURCE_EXHAUSTED": 503,
    "DEADLINE_EXCEEDED": 503,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
}
_MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?")
_OFF_LOOP_JSON_BYTES = 64 * 1024


class _JsonOrBinaryInputs:
    """An infer request's inputs: JSON `data`, or `binary_data_size` bytes of the binary section, in order."""

    __slots__ = ("_inputs", "_binary")

    def __init__(self, inputs: list[dict[str, Any]], binary: memoryview) -> None:
        self._inputs, self._binary = inputs, binary

    @property
    def names(self) -> list[str]:
        return [tensor["name"] for tensor in self._inputs]

    def decode(self, signature: SignatureSpec) -> dict[str, Any]:
        arrays: dict[str, Any] = {}
        offset = 0
        for tensor in self._inputs:
            name = tensor["name"]
            what = f"input '{name}'"
            if name in arrays:
                raise InvalidInputError(f"{what} is given twice")
            size = _binary_size(tensor.get("parameters"), what)
            if size is None:
                if "data" not in tensor:
                    raise InvalidInputError(f"{what} has neither 'data' nor a 'binary_data_size' parameter")
                arrays[name] = v2.json_input(tensor.get("datatype"), tensor.get("shape"), tensor["data"], what,
                                             base64_strings=_base64(tensor.get("parameters"), what))
                continue
            if "data" in tensor:
                raise InvalidInputError(f"{what} has both 'data' and a 'binary_data_size' parameter")
            if offset + size > len(self._binary):
                raise InvalidInputError(
                    f"{what} declares binary_data_size {size} but only {len(self._binary) - offset} bytes of "
                    "binary data remain after the JSON header"
                )
            raw = bytes(self._binary[offset:offset + size])
            offset += size
            arrays[name] = v2.binary_input(tensor.get("datatype"), tensor.get("shape"), raw, what)
        if offset != len(self._binary):
            raise InvalidInputError(
                f"the request carries {len(self._binary)} bytes of binary data but its inputs declare {offset}"
            )
        self._inputs, self._binary = [], memoryview(b"")
        return arrays


class KServeHttpApi:
    """The `/v2` routes; `add_routes` mounts them on the REST server's application."""

    def __init__(
        self, dataplane: DataPlane, *, observer: RequestObserver | None = None, timeout_seconds: float = 0.0
    ) -> None:
        self._dataplane = dataplane
        self._observer = observer
        self._timeout_seconds = timeout_seconds  # --rest_api_timeout_in_ms; 0: none unless the request sets one

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:v2(/.*)?}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/") or "/"
        if path == "/v2/health/live":
            return await self._get(request, None, "kserve-http:live", "/v2/health/live", self._live)
        if path == "/v2/health/ready":
            return await self._get(request, None, "kserve-http:ready", "/v2/health/ready", self._server_ready)
        if path == "/v2":
            return await self._get(request, None, "kserve-http:metadata", "/v2", self._server_metadata)
        match = _MODEL_PATH.fullmatch(path)
        if match is None:
            return await self._observe(request, None, "kserve-http:unknown", "/v2/*", _not_found(request))
        name, version_text, verb = match.groups()
        if verb == "/infer":
            route = "/v2/models/{model_name}/infer"
            if request.method != "POST":
                return _wrong_method(request, "POST")
            return await self._observe(
                request, name, "kserve-http:infer", route, lambda: self._infer(request, name, version_text)
            )
        if verb == "/ready":
            return await self._get(request, name, "kserve-http:model_ready", "/v2/models/{model_name}/ready",
                                   lambda: self._model_ready(name, version_text))
        return await self._get(request, name, "kserve-http:model_metadata", "/v2/models/{model_name}",
                               lambda: self._model_metadata(name, version_text))

    async def _get(
        self, request: web.Request, model: str | None, method: str, route: str,
        answer: Callable[[], tuple[int, dict[str, Any]]],
    ) -> web.Response:
        if request.method != "GET":
            return _wrong_method(request, "GET")

        async def respond() -> web.Response:
            status, body = answer()
            return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

        return await self._observe(request, model, method, route, respond)

    async def _observe(
        self, request: web.Request, model: str | None, method: str, route: str,
        compute: Callable[[], Awaitable[web.Response]],
    ) -> web.Response:
        return await observed(self._observer, request, model, method, route, lambda: _respond(compute),
                              HTTP_STATUS_BY_CODE)

    # -- health and metadata -------------------------------------------------------------------

    @staticmethod
    def _live() -> tuple[int, dict[str, Any]]:
        return 200, {"live": True}

    def _server_ready(self) -> tuple[int, dict[str, Any]]:
        ready = self._dataplane.server_ready()
        return (200 if ready else 400), {"ready": ready}

    @staticmethod
    def _server_metadata() -> tuple[int, dict[str, Any]]:
        return 200, {"name": SERVER_NAME, "version": server_version(), "extensions": EXTENSIONS}

    def _model_ready(self, name: str, version_text: str | None) -> tuple[int, dict[str, Any]]:
        version = parse_version(version_text or "")
        ready = self._dataplane.model_ready(name, version)
        return (200 if ready else 400), {"name": name, "ready": ready}

    def _model_metadata(self, name: str, version_text: str | None) -> tuple[int, dict[str, Any]]:
        with worded_for_triton():
            model = self._dataplane.describe_model(name, parse_version(version_text or ""))
        return 200, {
            "name": model.name,
            "versions": [str(v) for v in model.available_versions],
            "platform": PLATFORM,
            "inputs": [_tensor_metadata(t) for t in model.default_inputs],
            "outputs": [_tensor_metadata(t) for t in model.default_outputs],
        }

    # -- inference -----------------------------------------------------------------------------

    async def _infer(self, request: web.Request, name: str, version_text: str | None) -> web.Response:
        arrival = asyncio.get_running_loop().time()
        rest_deadline = arrival + self._timeout_seconds if self._timeout_seconds else None
        version = parse_version(version_text or "")
        with worded_for_triton():
            self._dataplane.check_model(name, version)  # NOT_FOUND before the body is read or judged
        raw = await read_body(request, rest_deadline)
        header, binary = _split(raw, request.headers.get(HEADER_LENGTH))
        body = await asyncio.to_thread(_loads, header) if len(header) > _OFF_LOOP_JSON_BYTES else _loads(header)
        del raw, header
        parameters = _object(body.get("parameters", {}), "'parameters'")
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(
            isinstance(tensor, dict) and isinstance(tensor.get("name"), str) for tensor in inputs
        ):
            raise InvalidInputError("'inputs' must be a list of objects, each with a 'name'")
        outputs = body.get("outputs", [])
        if not isinstance(outputs, list) or not all(
            isinstance(output, dict) and isinstance(output.get("name"), str) for output in outputs
        ):
            raise InvalidInputError("'outputs' must be a list of objects, each with a 'name'")
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise InvalidInputError("'id' must be a string")
        binary_default = _flag(parameters, "binary_data_output", False)
        binary_outputs, base64_outputs = {}, set()
        for output in outputs:
            output_parameters = _object(output.get("parameters", {}), f"output '{output['name']}' parameters")
            binary_outputs[output["name"]] = _flag(output_parameters, "binary_data", binary_default)
            if _base64(output_parameters, f"output '{output['name']}'"):
                base64_outputs.add(output["name"])
        deadline = _deadline(parameters, arrival, rest_deadline)
        del body
        with worded_for_triton():
            result = await self._dataplane.predict(PredictRequest(
                name, version, _signature(parameters), _JsonOrBinaryInputs(inputs, binary),
                [output["name"] for output in outputs], deadline,
            ))
        answer: dict[str, Any] = {"model_name": result.model_name, "model_version": str(result.model_version)}
        if request_id:
            answer["id"] = request_id
        described, chunks = [], []
        for output_name, array in result.outputs.items():
            datatype, shape, array, dtype = v2.output_parts(output_name, array)
            entry: dict[str, Any] = {"name": output_name, "datatype": datatype, "shape": shape}
            if binary_outputs.get(output_name, binary_default):
                chunk = v2.binary_output(array, dtype)
                entry["parameters"] = {"binary_data_size": len(chunk)}
                chunks.append(chunk)
            else:
                entry["data"] = v2.json_output(array, dtype, base64_strings=output_name in base64_outputs)
            described.append(entry)
        answer["outputs"] = described
        header = orjson.dumps(answer)
        if not chunks:
            return web.Response(body=header, content_type="application/json")
        return web.Response(
            body=b"".join((header, *chunks)), content_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(header))},
        )


async def _respond(compute: Callable[[], Awaitable[web.Response]]) -> tuple[web.Response, str]:
    """The response and its canonical status code; failures as KServe's {"error": ...}."""
    try:
        response = await compute()
        return response, "OK" if response.status < 400 else "FAILED_PRECONDITION"  # not ready: Triton's 400
    except ServingError as error:
        code = canonical_code(error)
        return _error(HTTP_STATUS_BY_CODE.get(code, 500), str(error)), code
    except web.HTTPRequestEntityTooLarge as error:
        return _error(413, error.text or "request body too large"), "RESOURCE_EXHAUSTED"
    except Exception:
        _log.exception("unexpected error in KServe HTTP handler")
        return _error(500, "internal server error (logged on the server)"), "INTERNAL"


def _error(status: int, message: str) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")


def _not_found(request: web.Request) -> Callable[[], Awaitable[web.Response]]:
    async def refuse() -> web.Response:
        raise ModelNotFoundError(f"Not Found: {request.method} {request.path}")

    return refuse


def _wrong_method(request: web.Request, allowed: str) -> web.Response:
    return _error(405, f"Method Not Allowed: {request.method} {request.path} takes {allowed}")


def _split(raw: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary section after it (Triton's binary tensor data extension)."""
    if header_length is None:
        return raw, memoryview(b"")
    if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(raw):
        raise InvalidInputError(
            f"{HEADER_LENGTH} must be a number of bytes within the body ({len(raw)} bytes), got '{header_length[:40]}'"
        )
    length = int(header_length)
    return raw[:length], memoryview(raw)[length:]


def _loads(data: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"the request is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidInputError("the request must be a JSON object")
    return body


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be an object")
    return value


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"parameter '{key}' must be true or false")
    return value


def _binary_size(parameters: object, what: str) -> int | None:
    if parameters is None:
        return None
    size = _object(parameters, f"{what} parameters").get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InvalidInputError(f"{what} parameter 'binary_data_size' must be a non-negative integer")
    return size


def _base64(parameters: object, what: str) -> bool:
    """The parameter `content_type` as MLServer's codecs write it: "base64" means BYTES data are base64
    strings; other content types ("str", "np", ...) describe what the client encoded and change nothing here."""
    return isinstance(parameters, dict) and parameters.get("content_type") == "base64"


def _signature(parameters: dict[str, Any]) -> str | None:
    """The request parameter `signature_name`; None (the model's default) without one."""
    if "signature_name" not in parameters:
        return None
    value = parameters["signature_name"]
    if not isinstance(value, str):
        raise InvalidInputError("parameter 'signature_name' must be a string")
    return value or None


def _deadline(parameters: dict[str, Any], arrival: float, rest_deadline: float | None) -> float | None:
    """Triton's request parameter `timeout` (microseconds), within --rest_api_timeout_in_ms when both are set."""
    timeout = parameters.get("timeout")
    if timeout is None:
        return rest_deadline
    if type(timeout) is not int or timeout < 0:
        raise InvalidInputError("parameter 'timeout' must be a non-negative integer (microseconds)")
    own = arrival + timeout / 1e6
    return own if rest_deadline is None else min(own, rest_deadline)


def _tensor_metadata(spec: Any) -> dict[str, Any]:
    """A signature tensor in v2 terms; -1 for an unknown dimension, [-1] for an unknown rank."""
    try:
        datatype = v2.datatype_of(spec.dtype)
    except InvalidInputError:
        datatype = spec.dtype.tf_name  # complex: no v2 name; say what it is rather than hide it
    shape = list(spec.shape) if spec.shape is not None else [-1]
    return {"name": spec.name, "datatype": datatype, "shape": shape}
