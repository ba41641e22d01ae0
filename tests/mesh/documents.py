"""Mesh documents shared by the mesh tests: the seed's PIP-66 chain and a FunctionMesh resource."""

from __future__ import annotations

from typing import Any


def pip66(namespace: str, package: str = "exclamation.py", tenant: str = "public") -> dict[str, Any]:
    """Two exclamation functions in a chain, as PIP-66 writes them (``py:`` for the package)."""
    return {
        "name": "exclaim-chain",
        "tenant": tenant,
        "namespace": namespace,
        "py": package,
        "functionInfos": [
            {
                "name": "first",
                "classname": "exclamation.ExclamationFunction",
                "replicas": 1,
                "inputs": [f"persistent://{tenant}/{namespace}/chain-in"],
                "output": f"persistent://{tenant}/{namespace}/chain-mid",
                "subscriptionPosition": "Earliest",
            },
            {
                "name": "second",
                "classname": "exclamation.ExclamationFunction",
                "replicas": 1,
                "inputs": [f"persistent://{tenant}/{namespace}/chain-mid"],
                "output": f"persistent://{tenant}/{namespace}/chain-out",
                "subscriptionPosition": "Earliest",
            },
        ],
        "externalInputs": [f"persistent://{tenant}/{namespace}/chain-in"],
    }


def function_mesh(
    namespace: str, out_dir: str, package: str = "exclamation.py", count: int = 30
) -> dict[str, Any]:
    """A ``FunctionMesh`` resource: data-generator source -> exclamation function -> file sink."""
    gen = f"persistent://public/{namespace}/fm-generated"
    loud = f"persistent://public/{namespace}/fm-loud"
    return {
        "apiVersion": "compute.functionmesh.io/v1alpha1",
        "kind": "FunctionMesh",
        "metadata": {"name": "gen-pipeline", "namespace": "pulsar-functions"},
        "spec": {
            "sources": [
                {
                    "name": "gen",
                    "tenant": "public",
                    "namespace": namespace,
                    "sourceType": "data-generator",
                    "replicas": 1,
                    "output": {"topic": gen},
                    "sourceConfig": {"count": count, "rate": 200},
                    "image": "streamnative/pulsar-io-data-generator:3.0",
                }
            ],
            "functions": [
                {
                    "name": "shout",
                    "tenant": "public",
                    "namespace": namespace,
                    "className": "exclamation.ExclamationFunction",
                    "replicas": 1,
                    "maxReplicas": 2,
                    "input": {"topics": [gen]},
                    "output": {"topic": loud},
                    "python": {"py": package},
                    "processingGuarantee": "atleast_once",
                    "subscriptionPosition": "earliest",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "pod": {"labels": {"team": "data"}},
                }
            ],
            "sinks": [
                {
                    "name": "store",
                    "tenant": "public",
                    "namespace": namespace,
                    "sinkType": "file",
                    "replicas": 1,
                    "input": {"topics": [loud]},
                    "subscriptionPosition": "earliest",
                    "sinkConfig": {"outputDirectory": out_dir, "fileName": "out.txt"},
                }
            ],
        },
    }
