"""``/openapi.json``: the gateway's public API, with the catalog's input models as schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.catalog import APP_IDS, CATALOG
from gateway.catalog.files import FileKind
from gateway.catalog.outputs import EditOutput
from gateway.media.images import ALLOWED_MEDIA_TYPES, MAX_SIDE

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "401": "Missing, malformed, unknown, revoked or expired key",
    "403": "The key may not use this endpoint",
    "404": "Unknown endpoint or request (or someone else's request)",
    "413": "Body too large",
    "422": "Body does not fit the endpoint or the key's policy",
    "502": "fal failed or could not be reached",
    "503": "The gateway's store is unavailable",
    "504": "fal did not answer in time",
}
_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "request_id", "response_url", "status_url", "cancel_url"],
    "properties": {
        "status": {"type": "string", "enum": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]},
        "request_id": {"type": "string"},
        "response_url": {"type": "string"},
        "status_url": {"type": "string"},
        "cancel_url": {"type": "string"},
        "queue_position": {"type": ["integer", "null"]},
        "logs": {"type": ["array", "null"], "items": {"type": "object"}},
        "metrics": {"type": "object"},
    },
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg", "type"],
                        "properties": {
                            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            ]
        },
        "error_type": {"type": "string"},
    },
}


_FILE_SCHEMAS: dict[FileKind, dict[str, Any]] = {
    FileKind.IMAGE: {
        "format": "uri",
        "pattern": "^([hH][tT][tT][pP][sS]?://|[dD][aA][tT][aA]:)",
        "description": "An http(s) URL, or a data URI (base64) of an image of type "
        f"{', '.join(sorted(ALLOWED_MEDIA_TYPES))}; inline images are at most {MAX_SIDE} "
        "pixels a side.",
    },
    FileKind.WEIGHTS: {
        "format": "uri",
        "pattern": "^[hH][tT][tT][pP][sS]?://",
        "description": "An http(s) URL of the weights (not a data URI).",
    },
    FileKind.MODEL: {
        "pattern": "^(?![dD][aA][tT][aA]:)",
        "description": "An http(s) URL of the weights or a Hugging Face repository path "
        "(not a data URI).",
    },
}
"""What each kind of file field accepts, as ``gateway.jobs.input_files`` checks it."""


def _strings_at(
    schema: dict[str, Any], path: tuple[str, ...], schemas: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The string schemas a file field's path reaches, through refs, lists and optionals."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    for branch in schema.get("anyOf", ()):
        yield from _strings_at(branch, path, schemas)
    if not path:
        if schema.get("type") == "string":
            yield schema
    elif path[0] == "*":
        if "items" in schema:
            yield from _strings_at(schema["items"], path[1:], schemas)
    elif path[0] in schema.get("properties", {}):
        yield from _strings_at(schema["properties"][path[0]], path[1:], schemas)


def _describe_files(schemas: dict[str, Any]) -> None:
    for endpoint in CATALOG.values():
        model = schemas[endpoint.input_model.__name__]
        for file_field in endpoint.input_model.FILE_FIELDS:
            for string in _strings_at(model, file_field.path, schemas):
                string.update(_FILE_SCHEMAS[file_field.kind])


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    errors = {
        code: {"description": _ERRORS[code], "content": _json({"$ref": _REF.format(model="Error")})}
        for code in codes
    }
    return {**ok, **errors}


def _request_paths(app_id: str) -> dict[str, Any]:
    request_id = {
        "name": "request_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    logs = {
        "name": "logs",
        "in": "query",
        "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
    }
    status_ref = {"$ref": _REF.format(model="QueueStatus")}
    base = f"/{app_id}/requests/{{request_id}}"
    return {
        f"{base}/status": {
            "get": {
                "summary": f"Status of a {app_id} request",
                "parameters": [request_id, logs],
                "responses": _responses(
                    {
                        "200": {"description": "Completed", "content": _json(status_ref)},
                        "202": {"description": "Queued or running", "content": _json(status_ref)},
                    },
                    "401",
                    "404",
                    "502",
                    "503",
                    "504",
                ),
            }
        },
        f"{base}/status/stream": {
            "get": {
                "summary": "Status as server-sent events until COMPLETED",
                "parameters": [request_id, logs],
                "responses": _responses(
                    {
                        "200": {
                            "description": "One event per status change",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        }
                    },
                    "401",
                    "404",
                    "502",
                    "503",
                    "504",
                ),
            }
        },
        base: {
            "get": {
                "summary": "The request's output",
                "parameters": [request_id],
                "responses": _responses(
                    {
                        "200": {
                            "description": "Output",
                            "content": _json({"$ref": _REF.format(model="EditOutput")}),
                        }
                    },
                    "401",
                    "404",
                    "422",
                    "502",
                    "503",
                    "504",
                ),
            }
        },
        f"{base}/cancel": {
            "put": {
                "summary": "Cancel the request",
                "parameters": [request_id],
                "responses": _responses(
                    {
                        "200": {"description": "Removed from the queue"},
                        "202": {"description": "Cancellation requested"},
                    },
                    "401",
                    "404",
                    "502",
                    "503",
                    "504",
                ),
            }
        },
    }


def openapi_document(public_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the queue API this gateway serves."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (e.input_model, "validation") for e in CATALOG.values()
    ]
    models.append((EditOutput, "serialization"))
    _, definitions = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = {
        **definitions.get("$defs", {}),
        "QueueStatus": _STATUS_SCHEMA,
        "Error": _ERROR_SCHEMA,
    }
    _describe_files(schemas)
    paths: dict[str, Any] = {}
    for endpoint in CATALOG.values():
        paths[f"/{endpoint.id}"] = {
            "post": {
                "summary": f"Submit a {endpoint.id} request to the queue",
                "operationId": f"submit_{endpoint.id.replace('/', '_').replace('-', '_')}",
                "requestBody": {
                    "required": True,
                    "content": _json({"$ref": _REF.format(model=endpoint.input_model.__name__)}),
                },
                "responses": _responses(
                    {
                        "200": {
                            "description": "Queued",
                            "content": _json({"$ref": _REF.format(model="QueueStatus")}),
                        }
                    },
                    "401",
                    "403",
                    "404",
                    "413",
                    "422",
                    "502",
                    "503",
                    "504",
                ),
            }
        }
    for app_id in sorted(APP_IDS):
        paths.update(_request_paths(app_id))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fal gateway",
            "version": "1",
            "description": "fal's queue API for FLUX editing endpoints, behind gateway keys. "
            "Authenticate with `Authorization: Bearer <key>` or `Authorization: Key <key>`.",
        },
        "servers": [{"url": public_url}],
        "security": [{"gatewayKey": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"gatewayKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
