"""Who may call administrative RPCs (model config reload, and any model control added later).

Triton's restricted-protocol idea: a call is allowed only when it carries a configured header (key and secret
value, compared in constant time) or comes over mutual TLS with a client certificate whose name the operator
listed. Anyone else who reaches the port gets PERMISSION_DENIED, whatever the call would have done.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Iterable

import grpc

from service.errors import PermissionDeniedError


@dataclass(frozen=True)
class AdminAccess:
    header: tuple[str, str] | None = None  # (metadata key, secret value)
    client_cert_names: frozenset[str] = frozenset()  # certificate common names or subject alternative names

    def check(self, context: grpc.aio.ServicerContext, call: str) -> None:
        """Raise PermissionDeniedError unless the caller presents the header or a listed certificate."""
        if self.header is not None and _has_header(context.invocation_metadata() or (), *self.header):
            return
        if self.client_cert_names and self.client_cert_names & _certificate_names(context):
            return
        accepted = " or ".join(
            part for part in (
                f"the '{self.header[0]}' header" if self.header else "",
                "a listed client certificate" if self.client_cert_names else "",
            ) if part
        )
        raise PermissionDeniedError(f"{call} is restricted on this server: present {accepted}")


def _has_header(metadata: Iterable[tuple[str, str | bytes]], key: str, secret: str) -> bool:
    for name, value in metadata:
        if name == key and isinstance(value, str) and hmac.compare_digest(value.encode(), secret.encode()):
            return True
    return False


def _certificate_names(context: grpc.aio.ServicerContext) -> frozenset[str]:
    """The client certificate's common name and subject alternative names (empty without mutual TLS)."""
    auth = context.auth_context() or {}
    names = [*auth.get("x509_common_name", ()), *auth.get("x509_subject_alternative_name", ())]
    return frozenset(name.decode() if isinstance(name, bytes) else str(name) for name in names)


def parse_admin_header(text: str) -> tuple[str, str]:
    """`key=value`; gRPC metadata keys are lower case."""
    key, separator, value = text.partition("=")
    key = key.strip().lower()
    if not separator or not key or not value:
        raise ValueError("expected KEY=VALUE, e.g. admin-key=<secret>")
    return key, value
