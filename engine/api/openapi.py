"""The OpenAPI 3 description of the worker's REST API, served at ``/admin/v3/openapi.json``.

The document is data: every path, its parameters, its request bodies and the shape of
its answers. Every error answer is ``{"reason": "..."}`` (the ``default`` response),
which the fuzz test (schemathesis) holds the worker to.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["OPENAPI", "add_openapi_route"]

_JSON = "application/json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY: dict[str, Any] = {}
_OBJECT = {"type": "object"}
_FN = "/admin/v3/functions/{tenant}/{namespace}/{name}"
_INST = _FN + "/{instanceId}"


def _ok(schema: dict[str, Any], content_type: str = _JSON, status: str = "200") -> dict[str, Any]:
    return {
        status: {"description": "success", "content": {content_type: {"schema": schema}}},
        "default": {"description": "an error", "content": {_JSON: {"schema": _ERROR}}},
    }


def _no_content() -> dict[str, Any]:
    return {
        "204": {"description": "initialized"},
        "default": {"description": "an error", "content": {_JSON: {"schema": _ERROR}}},
    }


def _params(*names: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in names:
        schema: dict[str, Any] = {"type": "string"}
        if name in ("tenant", "namespace", "name"):
            schema = {"type": "string", "pattern": r"^[-=:.\w]+$", "minLength": 1}
        if name == "instanceId":
            schema = {"type": "integer", "minimum": 0}
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _query(name: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string"}}


def _op(op_id: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "responses": responses, **extra}


_FN_PARAMS = _params("tenant", "namespace", "name")
_INST_PARAMS = _params("tenant", "namespace", "name", "instanceId")

_SUBMISSION = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "functionConfig": {"type": "string", "description": "a FunctionConfig as JSON"},
                    "data": {"type": "string", "format": "binary"},
                    "url": {"type": "string"},
                },
            }
        },
        _JSON: {"schema": _OBJECT},
    },
}
_STATE = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "numberValue": {"type": "integer"},
        "stringValue": {"type": "string"},
        "byteValue": {"type": "string"},
        "version": {"type": "integer"},
    },
}
_TRIGGER = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"data": {"type": "string"}, "topic": {"type": "string"}},
            }
        },
        _JSON: {"schema": _OBJECT},
    },
}
_STATUS = {
    "type": "object",
    "required": ["numInstances", "numRunning", "instances"],
    "properties": {
        "numInstances": {"type": "integer"},
        "numRunning": {"type": "integer"},
        "instances": {"type": "array"},
    },
}
_CONTROL = {"parameters": _FN_PARAMS}
_INST_CONTROL = {"parameters": _INST_PARAMS}

_MESH = "/admin/v3/meshes/{tenant}/{namespace}/{name}"
_MESH_SUBMISSION = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["mesh"],
                "properties": {
                    "mesh": {
                        "type": "string",
                        "description": "PIP-66 YAML or a FunctionMesh resource (YAML or JSON)",
                    },
                    "data": {
                        "type": "string",
                        "format": "binary",
                        "description": "a package a member names by file (filename: its base name)",
                    },
                },
            }
        },
        _JSON: {
            "schema": {
                "type": "object",
                "required": ["mesh"],
                "properties": {"mesh": {"type": "object", "description": "the mesh document"}},
            }
        },
    },
}
_MESH_WRITE = {
    "type": "object",
    "required": ["version", "warnings"],
    "properties": {
        "version": {"type": "integer"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        **{
            k: {"type": "array", "items": {"type": "string"}}
            for k in ("added", "changed", "removed", "unchanged")
        },
    },
}
_MESH_STATUS = {
    "type": "object",
    "required": ["name", "state", "condition", "members", "topics"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "integer"},
        "state": {"type": "string", "enum": ["ready", "pending", "error"]},
        "condition": _OBJECT,
        "members": {"type": "array"},
        "topics": {"type": "array"},
        "bottleneck": {"type": "string", "nullable": True},
    },
}
_MESH_LEADER = {
    "required": True,
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "change": {"type": "object", "nullable": True},
                    "expectedVersion": {"type": "integer", "nullable": True},
                },
            }
        }
    },
}
_GRAPH_FORMAT = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["text", "dot", "svg"]},
}


def _connector_submission(kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        f"{kind}Config": {
            "type": "string",
            "description": f"a {kind.capitalize()}Config as JSON",
        },
        "data": {"type": "string", "format": "binary"},
        "url": {"type": "string"},
    }
    if kind == "sink":
        properties["transformFunction"] = {
            "type": "string",
            "format": "binary",
            "description": "the transform function's package (.py, .zip or .whl), stored for every worker",
        }
    return {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "properties": properties}}},
    }


def _connector_paths(kind: str) -> dict[str, Any]:
    """The ``/admin/v3/sources`` or ``/admin/v3/sinks`` paths (``kind`` is source or sink)."""
    Kind = kind.capitalize()
    one = f"/admin/v3/{kind}s/{{tenant}}/{{namespace}}/{{name}}"
    return {
        f"/admin/v3/{kind}s/{{tenant}}/{{namespace}}": {
            "get": _op(
                f"list{Kind}s",
                _ok({"type": "array", "items": {"type": "string"}}),
                parameters=_params("tenant", "namespace"),
            )
        },
        one: {
            "parameters": _FN_PARAMS,
            "post": _op(f"register{Kind}", _ok(_OBJECT), requestBody=_connector_submission(kind)),
            "put": _op(f"update{Kind}", _ok(_OBJECT), requestBody=_connector_submission(kind)),
            "delete": _op(f"deregister{Kind}", _ok(_OBJECT)),
            "get": _op(f"get{Kind}Info", _ok(_OBJECT)),
        },
        one + "/status": {**_CONTROL, "get": _op(f"get{Kind}Status", _ok(_STATUS))},
        one + "/stats": {**_CONTROL, "get": _op(f"get{Kind}Stats", _ok(_OBJECT))},
        **{
            one + f"/{verb}": {**_CONTROL, "post": _op(f"{verb}{Kind}", _ok(_OBJECT))}
            for verb in ("stop", "start", "restart")
        },
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Magnetar function worker",
        "version": "1",
        "description": (
            "Pulsar's /admin/v3/functions, /admin/v3/sources, /admin/v3/sinks and /admin/v2/worker "
            "REST API as Magnetar serves it, and its /admin/v3/meshes (Function Mesh)."
        ),
    },
    "paths": {
        "/admin/v3/functions/upload": {
            "post": _op(
                "uploadPackage",
                _ok({"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}),
                requestBody={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["data"],
                                "properties": {
                                    "data": {"type": "string", "format": "binary"},
                                    "path": {"type": "string"},
                                },
                            }
                        }
                    },
                },
            )
        },
        "/admin/v3/functions/download": {
            "get": _op(
                "downloadPackage",
                _ok({"type": "string", "format": "binary"}, "application/octet-stream"),
                parameters=[_query("path")],
            )
        },
        "/admin/v3/functions/leader/{tenant}/{namespace}/{name}": {
            "put": _op(
                "leaderWrite",
                _ok({"type": "object", "properties": {"version": {"type": "integer"}}}),
                parameters=_FN_PARAMS,
                requestBody={
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "metadata": {"type": "string", "nullable": True},
                                    "expectedVersion": {"type": "integer", "nullable": True},
                                },
                            }
                        }
                    },
                },
            )
        },
        "/admin/v3/functions/{tenant}/{namespace}": {
            "get": _op(
                "listFunctions",
                _ok({"type": "array", "items": {"type": "string"}}),
                parameters=_params("tenant", "namespace"),
            )
        },
        _FN: {
            "parameters": _FN_PARAMS,
            "post": _op("registerFunction", _ok(_OBJECT), requestBody=_SUBMISSION),
            "put": _op("updateFunction", _ok(_OBJECT), requestBody=_SUBMISSION),
            "delete": _op("deregisterFunction", _ok(_OBJECT)),
            "get": _op("getFunctionInfo", _ok(_OBJECT)),
        },
        _FN + "/status": {**_CONTROL, "get": _op("getFunctionStatus", _ok(_STATUS))},
        _FN + "/stats": {**_CONTROL, "get": _op("getFunctionStats", _ok(_OBJECT))},
        _FN + "/stop": {**_CONTROL, "post": _op("stopFunction", _ok(_OBJECT))},
        _FN + "/start": {**_CONTROL, "post": _op("startFunction", _ok(_OBJECT))},
        _FN + "/restart": {**_CONTROL, "post": _op("restartFunction", _ok(_OBJECT))},
        _FN + "/trigger": {
            **_CONTROL,
            "post": _op(
                "triggerFunction",
                _ok({"type": "string", "format": "binary"}, "application/octet-stream"),
                requestBody=_TRIGGER,
            ),
        },
        _FN + "/download": {
            **_CONTROL,
            "get": _op(
                "downloadFunction", _ok({"type": "string", "format": "binary"}, "application/octet-stream")
            ),
        },
        _FN + "/state/{key}": {
            "parameters": _params("tenant", "namespace", "name", "key"),
            "get": _op("getFunctionState", _ok(_STATE)),
            "post": _op(
                "putFunctionState",
                _ok(_OBJECT),
                requestBody={"required": True, "content": {_JSON: {"schema": _STATE}}},
            ),
        },
        _INST + "/status": {**_INST_CONTROL, "get": _op("getInstanceStatus", _ok(_OBJECT))},
        _INST + "/stats": {**_INST_CONTROL, "get": _op("getInstanceStats", _ok(_OBJECT))},
        _INST + "/stop": {**_INST_CONTROL, "post": _op("stopInstance", _ok(_OBJECT))},
        _INST + "/start": {**_INST_CONTROL, "post": _op("startInstance", _ok(_OBJECT))},
        _INST + "/restart": {**_INST_CONTROL, "post": _op("restartInstance", _ok(_OBJECT))},
        "/admin/v3/meshes/leader/{tenant}/{namespace}/{name}": {
            "put": _op(
                "meshLeaderWrite",
                _ok({"type": "object", "properties": {"record": _OBJECT}}),
                parameters=_FN_PARAMS,
                requestBody=_MESH_LEADER,
            )
        },
        "/admin/v3/meshes/{tenant}/{namespace}": {
            "get": _op(
                "listMeshes",
                _ok({"type": "array", "items": {"type": "string"}}),
                parameters=_params("tenant", "namespace"),
            )
        },
        _MESH: {
            "parameters": _FN_PARAMS,
            "post": _op("createMesh", _ok(_MESH_WRITE), requestBody=_MESH_SUBMISSION),
            "put": _op("updateMesh", _ok(_MESH_WRITE), requestBody=_MESH_SUBMISSION),
            "delete": _op("deleteMesh", _ok(_OBJECT)),
            "get": _op("getMesh", _ok(_OBJECT)),
        },
        _MESH + "/status": {**_CONTROL, "get": _op("getMeshStatus", _ok(_MESH_STATUS))},
        _MESH + "/graph": {
            **_CONTROL,
            "get": {
                "operationId": "getMeshGraph",
                "parameters": [_GRAPH_FORMAT],
                "responses": {
                    "200": {
                        "description": "the pipeline drawn",
                        "content": {
                            ct: {"schema": {"type": "string"}}
                            for ct in ("text/plain", "text/vnd.graphviz", "image/svg+xml")
                        },
                    },
                    "default": {"description": "an error", "content": {_JSON: {"schema": _ERROR}}},
                },
            },
        },
        "/admin/v3/sources/builtinsources": {"get": _op("getBuiltinSources", _ok({"type": "array"}))},
        "/admin/v3/sinks/builtinsinks": {"get": _op("getBuiltinSinks", _ok({"type": "array"}))},
        "/admin/v3/sources/reloadBuiltInSources": {"post": _op("reloadBuiltinSources", _no_content())},
        "/admin/v3/sinks/reloadBuiltInSinks": {"post": _op("reloadBuiltinSinks", _no_content())},
        "/admin/v2/worker/connectors": {"get": _op("getConnectorsList", _ok({"type": "array"}))},
        **_connector_paths("source"),
        **_connector_paths("sink"),
        "/admin/v2/worker/cluster": {"get": _op("getCluster", _ok({"type": "array"}))},
        "/admin/v2/worker/cluster/leader": {"get": _op("getClusterLeader", _ok(_OBJECT))},
        "/admin/v2/worker/cluster/leader/ready": {"get": _op("isLeaderReady", _ok({"type": "boolean"}))},
        "/admin/v2/worker/assignments": {"get": _op("getAssignments", _ok(_OBJECT))},
        "/admin/v2/worker/rebalance": {"put": _op("rebalance", _ok(_OBJECT))},
        "/admin/v2/worker/leader/drain": {
            "parameters": [_query("workerId")],
            "get": _op("getDrainStatus", _ok(_OBJECT)),
            "put": _op("drainWorker", _ok(_OBJECT)),
        },
        "/admin/v2/worker/drain": {
            "get": _op("getOwnDrainStatus", _ok(_OBJECT)),
            "put": _op("drainSelf", _ok(_OBJECT)),
        },
        "/admin/v2/worker-stats/functionsmetrics": {
            "get": _op("getFunctionsMetrics", _ok({"type": "array"}))
        },
        "/admin/v2/worker-stats/metrics": {"get": _op("getWorkerMetrics", _ok({"type": "array"}))},
        "/metrics": {"get": _op("getPrometheusMetrics", _ok({"type": "string"}, "text/plain"))},
        "/initialized": {"get": _op("isInitialized", _no_content())},
        "/admin/v3/openapi.json": {"get": _op("getOpenApi", _ok(_OBJECT))},
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string"}},
            }
        }
    },
}


async def _serve(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def add_openapi_route(app: web.Application) -> None:
    """Mount ``GET /admin/v3/openapi.json``."""
    app.router.add_get("/admin/v3/openapi.json", _serve)
