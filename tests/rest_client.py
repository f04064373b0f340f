"""TF Serving REST calls as its documentation shows them: JSON bodies, {"b64": ...} for bytes."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def rest_call(port: int, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body); error statuses are returned, not raised."""
    data = (body if isinstance(body, bytes) else json.dumps(body).encode()) if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
