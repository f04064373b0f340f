"""TLS and mutual TLS from flags, with certificates generated at test time."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

pytest.importorskip("cryptography")
from certificates import certificate_authority, issue  # noqa: E402
from imaging import jpeg  # noqa: E402
from server_process import ServerProcess  # noqa: E402
from tf_serving_client import predict_outputs, predict_request  # noqa: E402


@pytest.fixture(scope="module")
def pki():
    ca = certificate_authority("batchserve test CA")
    rogue_ca = certificate_authority("someone else's CA")
    return {
        "ca": ca,
        "server": issue(ca, "localhost", server=True),
        "client": issue(ca, "good client", server=False),
        "admin": issue(ca, "admin client", server=False),
        "rogue_client": issue(rogue_ca, "rogue client", server=False),
    }


def predict_ok(channel: grpc.Channel) -> bool:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return predict_outputs(stub.Predict(predict_request("tiny", [jpeg(1)]), timeout=10))[1].shape == (1, 5)


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return caught.value.code()


def secure(address: str, pki, client: str | None = None, ca: str = "ca") -> grpc.Channel:
    identity = pki[client] if client else None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki[ca].cert_pem,
        private_key=identity.key_pem if identity else None,
        certificate_chain=identity.cert_pem if identity else None,
    )
    return grpc.secure_channel(address, credentials)


def rest_status(
    server: ServerProcess, pki, tmp_path, client: str | None = None, path: str = "/v1/models/tiny"
) -> int | str:
    """GET `path` (the model status) over https on the REST port: the HTTP status, or the TLS failure's name."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cadata=pki["ca"].cert_pem.decode())
    if client is not None:
        (tmp_path / f"{client}.crt").write_bytes(pki[client].cert_pem)
        (tmp_path / f"{client}.key").write_bytes(pki[client].key_pem)
        context.load_cert_chain(tmp_path / f"{client}.crt", tmp_path / f"{client}.key")
    try:
        with urllib.request.urlopen(f"https://localhost:{server.metrics_port}{path}", context=context,
                                    timeout=10) as response:
            return response.status
    except urllib.error.URLError as error:  # refused during the handshake
        return type(error.reason).__name__
    except (ConnectionError, OSError) as error:  # TLS 1.3: the server drops the connection after it
        return type(error).__name__


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(tiny_model_base, tmp_path, pki):
    for name in ("server", "ca"):
        (tmp_path / f"{name}.crt").write_bytes(pki[name].cert_pem)
    (tmp_path / "server.key").write_bytes(pki["server"].key_pem)
    with ServerProcess(
        tiny_model_base, f"--tls_cert_file={tmp_path / 'server.crt'}", f"--tls_key_file={tmp_path / 'server.key'}",
        f"--tls_client_ca_file={tmp_path / 'ca.crt'}", model_name="tiny",
    ) as server:
        with secure(server.address, pki, client="client") as channel:
            assert predict_ok(channel)
        outcomes = {}
        with secure(server.address, pki) as channel:
            outcomes["no client certificate"] = refused(channel)
        with secure(server.address, pki, client="rogue_client") as channel:
            outcomes["certificate from another CA"] = refused(channel)
        with grpc.insecure_channel(server.address) as channel:
            outcomes["plaintext"] = refused(channel)
        print(f"\nmTLS refusals: {json.dumps({k: v.name for k, v in outcomes.items()})}")
        assert set(outcomes.values()) == {grpc.StatusCode.UNAVAILABLE}
        # The REST port takes the same TLS and client verification.
        assert rest_status(server, pki, tmp_path, client="client") == 200
        assert rest_status(server, pki, tmp_path) != 200
        assert rest_status(server, pki, tmp_path, client="rogue_client") != 200
        # KServe v2 over HTTP shares the port, and so its TLS and client verification.
        assert rest_status(server, pki, tmp_path, client="client", path="/v2/models/tiny/ready") == 200
        assert rest_status(server, pki, tmp_path, path="/v2/models/tiny/ready") != 200
        assert any("tls=mutual" in line for line in server.log_lines)
        assert "PRIVATE KEY" not in server.log and pki["server"].key_pem.decode() not in server.log


def test_model_config_reload_is_allowed_only_to_a_listed_client_certificate(tiny_model_base, tmp_path, pki):
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    for name in ("server", "ca"):
        (tmp_path / f"{name}.crt").write_bytes(pki[name].cert_pem)
    (tmp_path / "server.key").write_bytes(pki["server"].key_pem)
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(
        f'model_config_list {{ config {{ name: "tiny" base_path: "{tiny_model_base}" model_platform: "tensorflow" }} }}',
        request.config,
    )
    with ServerProcess(
        tiny_model_base, f"--tls_cert_file={tmp_path / 'server.crt'}", f"--tls_key_file={tmp_path / 'server.key'}",
        f"--tls_client_ca_file={tmp_path / 'ca.crt'}", "--enable_model_config_reload",
        "--admin_client_cert_names=admin client", model_name="tiny",
    ) as server:
        with secure(server.address, pki, client="client") as channel:
            with pytest.raises(grpc.RpcError) as refused_call:
                model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=30)
            assert refused_call.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "a listed client certificate" in refused_call.value.details()
        with secure(server.address, pki, client="admin") as channel:
            answer = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=30)
            assert answer.status.error_code == 0
            assert predict_ok(channel)


def test_ssl_config_file_in_tf_serving_format_serves_tls(tiny_model_base, tmp_path, pki):
    config = tmp_path / "ssl.cfg"
    config.write_text(
        f"server_key: {json.dumps(pki['server'].key_pem.decode())}\n"
        f"server_cert: {json.dumps(pki['server'].cert_pem.decode())}\n"
        "client_verify: false\n"
    )
    with ServerProcess(tiny_model_base, f"--ssl_config_file={config}", model_name="tiny") as server:
        with secure(server.address, pki) as channel:
            assert predict_ok(channel)
        with grpc.insecure_channel(server.address) as channel:
            assert refused(channel) == grpc.StatusCode.UNAVAILABLE
        assert rest_status(server, pki, tmp_path) == 200  # https on the REST port too
        assert any("tls=on" in line for line in server.log_lines)
        assert "PRIVATE KEY" not in server.log


def test_tls_settings_are_checked_without_echoing_key_material(tmp_path):
    from service.process.settings import load_settings
    from service.process.tls import TlsConfigError, parse_ssl_config, tls_material

    with pytest.raises(SystemExit):
        load_settings(["--tls_cert_file=/x.crt"], environ={})  # a certificate without its key
    with pytest.raises(SystemExit):
        load_settings(["--tls_client_ca_file=/ca.crt"], environ={})
    with pytest.raises(TlsConfigError, match="client_verify needs custom_ca"):
        parse_ssl_config('server_key: "k" server_cert: "c" client_verify: true')
    with pytest.raises(TlsConfigError, match="not a valid SSLConfig") as caught:
        parse_ssl_config('server_key: "SECRET" bogus_field: 1')
    assert "SECRET" not in str(caught.value) and "bogus_field" in str(caught.value)
    missing = load_settings([f"--tls_cert_file={tmp_path / 'no.crt'}", f"--tls_key_file={tmp_path / 'no.key'}"], environ={})
    with pytest.raises(TlsConfigError, match="--tls_key_file"):
        tls_material(missing)
    assert "SECRET" not in repr(parse_ssl_config('server_key: "SECRET" server_cert: "c"'))
