"""gRPC server credentials from flags: TLS, or mutual TLS when a client CA is given.

Two ways in, like tensorflow_model_server plus the usual file flags:

- `--ssl_config_file`: TF Serving's `SSLConfig` text proto, PEM *contents* inline::

      server_key: "-----BEGIN PRIVATE KEY-----\\n..."
      server_cert: "-----BEGIN CERTIFICATE-----\\n..."
      custom_ca: "-----BEGIN CERTIFICATE-----\\n..."   # optional
      client_verify: true                             # require a client certificate signed by custom_ca

- `--tls_cert_file` / `--tls_key_file` [/ `--tls_client_ca_file`]: PEM files; a client CA turns on mTLS.

Key material is read once at start-up and never logged; errors name the file, not its contents.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from service.process.settings import ServerSettings


class TlsConfigError(ValueError):
    """The TLS settings cannot be used; the message names the flag or file at fault."""


@dataclass(frozen=True)
class TlsMaterial:
    private_key: bytes
    certificate_chain: bytes
    client_ca: bytes | None
    require_client_auth: bool

    def __repr__(self) -> str:  # never print key material, even by accident
        return f"TlsMaterial(client_ca={self.client_ca is not None}, require_client_auth={self.require_client_auth})"

    def ssl_context(self) -> ssl.SSLContext:
        """The same certificate, key and client CA for the REST port (aiohttp serves it with this context).

        The ssl module loads a certificate chain only from files: they are written to a private temporary
        directory and removed at once."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="batchserve-tls-") as directory:  # mode 0700
            certificate, key = Path(directory) / "certificate.pem", Path(directory) / "key.pem"
            certificate.write_bytes(self.certificate_chain)
            key.touch(mode=0o600)
            key.write_bytes(self.private_key)
            context.load_cert_chain(certificate, key)
        if self.client_ca is not None:
            context.load_verify_locations(cadata=self.client_ca.decode("ascii", "replace"))
        context.verify_mode = ssl.CERT_REQUIRED if self.require_client_auth else ssl.CERT_NONE
        return context

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.require_client_auth,
        )


@cache
def _ssl_config_class() -> type:
    """TF Serving's SSLConfig (ssl_config.proto), declared here: tensorflow-serving-api does not ship it."""
    fd = descriptor_pb2.FileDescriptorProto(
        name="batchserve/ssl_config.proto", package="batchserve.tfserving", syntax="proto3"
    )
    message = fd.message_type.add(name="SSLConfig")
    F = descriptor_pb2.FieldDescriptorProto
    for number, name in enumerate(("server_key", "server_cert", "custom_ca"), start=1):
        message.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    message.field.add(name="client_verify", number=4, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("batchserve.tfserving.SSLConfig"))


def parse_ssl_config(text: str) -> TlsMaterial:
    config = _ssl_config_class()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise TlsConfigError(f"--ssl_config_file is not a valid SSLConfig text proto: {error}") from None
    if not config.server_key or not config.server_cert:
        raise TlsConfigError("--ssl_config_file must set both server_key and server_cert")
    if config.client_verify and not config.custom_ca:
        raise TlsConfigError("--ssl_config_file: client_verify needs custom_ca to verify clients against")
    return TlsMaterial(
        private_key=config.server_key.encode(),
        certificate_chain=config.server_cert.encode(),
        client_ca=config.custom_ca.encode() or None,
        require_client_auth=bool(config.client_verify),
    )


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsConfigError(f"{flag} {path}: {error.strerror or error}") from None


def tls_material(settings: ServerSettings) -> TlsMaterial | None:
    """The TLS material the settings ask for, or None for a plaintext port."""
    if settings.ssl_config_file is not None:
        return parse_ssl_config(_read(settings.ssl_config_file, "--ssl_config_file").decode("utf-8", "replace"))
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = _read(settings.tls_client_ca_file, "--tls_client_ca_file")
    return TlsMaterial(
        private_key=_read(settings.tls_key_file, "--tls_key_file"),
        certificate_chain=_read(settings.tls_cert_file, "--tls_cert_file"),
        client_ca=client_ca,
        require_client_auth=client_ca is not None,
    )
