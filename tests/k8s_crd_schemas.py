"""Structural JSON schemas for the CRDs we ship objects of; kubernetes-validate knows only built-in kinds.

They are subsets of the CRDs' own openAPIV3Schema (Prometheus Operator monitoring.coreos.com/v1
ServiceMonitor, KEDA keda.sh/v1alpha1 ScaledObject, KServe serving.kserve.io/v1alpha1 ClusterServingRuntime
and serving.kserve.io/v1beta1 InferenceService): the fields we use, their types and required fields,
and `additionalProperties: false` where a misspelt field would otherwise be silently ignored by the operator
(the API server prunes unknown fields of a structural CRD).
"""

from __future__ import annotations

_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}

SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}

_HPA_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "value", "periodSeconds"],
                "additionalProperties": False,
                "properties": {
                    "type": {"enum": ["Pods", "Percent"]},
                    "value": {"type": "integer", "minimum": 1},
                    "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                },
            },
        },
    },
}
_HPA_BEHAVIOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"scaleUp": _HPA_RULES, "scaleDown": _HPA_RULES},
}

SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": _HPA_BEHAVIOR,
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": _STRING_MAP,
                        },
                    },
                },
            },
        },
    },
}

# --- KServe (kserve/kserve config/crd/full/serving.kserve.io_clusterservingruntimes.yaml and
# serving.kserve.io_inferenceservices.yaml). Containers are core/v1 Containers there; only the fields we use.

# resource.Quantity as the CRDs spell it (int-or-string with this pattern).
_QUANTITY = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string", "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"},
    ],
}
_INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_PORT_NUMBER = {"type": "integer", "minimum": 1, "maximum": 65535}
# KServe's InferenceServiceProtocol values (pkg/constants: ProtocolV1, ProtocolV2, ProtocolGRPCV1, ProtocolGRPCV2);
# the CRDs say only `string`, and an unknown value makes a runtime match no InferenceService.
_PROTOCOL = {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
}
_PROBE_TIMING = {
    "initialDelaySeconds": {"type": "integer", "minimum": 0},
    "periodSeconds": {"type": "integer", "minimum": 1},
    "timeoutSeconds": {"type": "integer", "minimum": 1},
    "successThreshold": {"type": "integer", "minimum": 1},
    "failureThreshold": {"type": "integer", "minimum": 1},
}
_PROBE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "httpGet": {
            "type": "object",
            "required": ["port"],
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "pattern": "^/"},
                "port": {"anyOf": [_PORT_NUMBER, {"type": "string"}]},
                "scheme": {"enum": ["HTTP", "HTTPS"]},
                "host": {"type": "string"},
                "httpHeaders": {"type": "array"},
            },
        },
        "grpc": {
            "type": "object",
            "required": ["port"],
            "additionalProperties": False,
            "properties": {"port": _PORT_NUMBER, "service": {"type": "string"}},
        },
        "tcpSocket": {
            "type": "object",
            "required": ["port"],
            "additionalProperties": False,
            "properties": {"port": {"anyOf": [_PORT_NUMBER, {"type": "string"}]}},
        },
        "exec": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}},
        **_PROBE_TIMING,
    },
    # Exactly one handler, as the API server requires.
    "oneOf": [{"required": [handler]} for handler in ("httpGet", "grpc", "tcpSocket", "exec")],
}
_CONTAINER_PORTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["containerPort"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 15},
            "containerPort": _PORT_NUMBER,
            "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
        },
    },
}
_SECURITY_CONTEXT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "runAsNonRoot": {"type": "boolean"},
        "runAsUser": {"type": "integer", "minimum": 0},
        "runAsGroup": {"type": "integer", "minimum": 0},
        "allowPrivilegeEscalation": {"type": "boolean"},
        "privileged": {"type": "boolean"},
        "readOnlyRootFilesystem": {"type": "boolean"},
        "capabilities": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"add": {"type": "array", "items": {"type": "string"}},
                           "drop": {"type": "array", "items": {"type": "string"}}},
        },
        "seccompProfile": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {"type": {"enum": ["RuntimeDefault", "Localhost", "Unconfined"]},
                           "localhostProfile": {"type": "string"}},
        },
    },
}
_ENV = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "value": {"type": "string"}, "valueFrom": {"type": "object"}},
    },
}
_CONTAINER_FIELDS = {
    "image": {"type": "string"},
    "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "command": {"type": "array", "items": {"type": "string"}},
    "args": {"type": "array", "items": {"type": "string"}},
    "env": _ENV,
    "ports": _CONTAINER_PORTS,
    "resources": _RESOURCES,
    "startupProbe": _PROBE,
    "readinessProbe": _PROBE,
    "livenessProbe": _PROBE,
    "securityContext": _SECURITY_CONTEXT,
    "volumeMounts": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "mountPath"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "mountPath": {"type": "string"},
                           "readOnly": {"type": "boolean"}, "subPath": {"type": "string"}},
        },
    },
}
_SERVING_RUNTIME_CONTAINER = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, **_CONTAINER_FIELDS},
}

CLUSTER_SERVING_RUNTIME = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
        "kind": {"const": "ClusterServingRuntime"},
        # Cluster-scoped (the CRD's scope: Cluster): a namespace would be ignored.
        "metadata": {**_METADATA, "not": {"required": ["namespace"]}},
        "spec": {
            "type": "object",
            "required": ["containers"],
            "additionalProperties": False,
            "properties": {
                # Copied onto the predictor pods (ServingRuntimePodSpec.Annotations): string values only.
                "annotations": _STRING_MAP,
                "labels": _STRING_MAP,
                "supportedModelFormats": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "autoSelect": {"type": "boolean"},
                            "priority": {"type": "integer", "minimum": 1},
                        },
                    },
                },
                "protocolVersions": {"type": "array", "items": _PROTOCOL},
                "multiModel": {"type": "boolean"},
                "disabled": {"type": "boolean"},
                "containers": {"type": "array", "minItems": 1, "items": _SERVING_RUNTIME_CONTAINER},
                "volumes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "emptyDir": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"medium": {"type": "string"}, "sizeLimit": _QUANTITY},
                            },
                        },
                    },
                },
                "nodeSelector": _STRING_MAP,
                "tolerations": {"type": "array"},
                "affinity": {"type": "object"},
                "imagePullSecrets": {"type": "array"},
            },
        },
    },
}

_METRIC_TARGET = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["Utilization", "Value", "AverageValue"]},
        "value": _QUANTITY,
        "averageValue": _QUANTITY,
        "averageUtilization": {"type": "integer"},
    },
}

INFERENCE_SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "annotations": _STRING_MAP,
                "labels": _STRING_MAP,
            },
        },
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "timeout": {"type": "integer"},
                        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
                        "serviceAccountName": {"type": "string"},
                        "nodeSelector": _STRING_MAP,
                        "tolerations": {"type": "array"},
                        "annotations": _STRING_MAP,
                        "labels": _STRING_MAP,
                        "autoScaling": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "metrics": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "type": {"enum": ["Resource", "External", "PodMetric"]},
                                            "resource": {"type": "object"},
                                            "podmetric": {"type": "object"},
                                            "external": {
                                                "type": "object",
                                                "required": ["metric", "target"],
                                                "additionalProperties": False,
                                                "properties": {
                                                    "metric": {
                                                        "type": "object",
                                                        "additionalProperties": False,
                                                        "properties": {
                                                            "backend": {"enum": ["prometheus", "graphite"]},
                                                            "serverAddress": {"type": "string"},
                                                            "query": {"type": "string"},
                                                            "namespace": {"type": "string"},
                                                        },
                                                    },
                                                    "target": _METRIC_TARGET,
                                                    "authenticationRef": {"type": "object"},
                                                },
                                            },
                                        },
                                    },
                                },
                                "behavior": _HPA_BEHAVIOR,
                            },
                        },
                        "model": {
                            "type": "object",
                            "required": ["modelFormat"],
                            "additionalProperties": False,
                            "properties": {
                                "modelFormat": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                                },
                                "runtime": {"type": "string"},
                                "runtimeVersion": {"type": "string"},
                                "protocolVersion": _PROTOCOL,
                                "storageUri": {"type": "string"},
                                **_CONTAINER_FIELDS,
                            },
                        },
                    },
                },
            },
        },
    },
}

CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): CLUSTER_SERVING_RUNTIME,
    ("serving.kserve.io/v1beta1", "InferenceService"): INFERENCE_SERVICE,
}
