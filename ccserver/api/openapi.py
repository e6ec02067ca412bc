"""The OpenAPI 3.1 document, generated from the route table and the pydantic models."""

from __future__ import annotations

import re

from pydantic.json_schema import models_json_schema

from ccserver.api import models as m
from ccserver.api.routes import Route

_PARAM = re.compile(r"\{(\w+)\}")
_INT_PARAMS = {"token_id", "user_id", "team_id", "version"}


def openapi_document(routes: tuple[Route, ...]) -> dict:
    """The document served at ``/openapi.json``; every API route appears, and only those."""
    used = {m.Error} | {r.body for r in routes if r.body} | {r.response for r in routes if r.response}
    _, schemas = models_json_schema([(model, "validation") for model in sorted(used, key=lambda c: c.__name__)],
                                    ref_template="#/components/schemas/{model}")
    paths: dict[str, dict] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    paths["/api/v1/live"] = {"get": {
        "operationId": "live", "summary": "Live state over a WebSocket: a snapshot, then changes",
        "description": "Upgrade to a WebSocket. First message {type: snapshot}, then {type: agent|call_ended|"
                       "queues|nodes}. Clients that do not keep up are disconnected (close code 1013).",
        "security": [{"bearer": []}, {"session": []}],
        "responses": {"101": {"description": "switching to WebSocket"},
                      "400": _error("not a WebSocket request"), "401": _error("not authenticated")},
    }}
    text = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    paths["/metrics"] = {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "security": [],
                                 "responses": {"200": text}}}
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "The process serves", "security": [],
                                 "responses": {"200": text}}}
    paths["/readyz"] = {"get": {"operationId": "readyz", "summary": "Ready: database and core up", "security": [],
                                "responses": {"200": text, "503": text}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ccserver API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "ccs_session",
                            "description": "plus the X-CSRF-Token header on state-changing requests"},
            },
        },
    }


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _operation(r: Route) -> dict:
    op: dict = {"operationId": r.name, "summary": r.summary,
                "security": [] if r.roles is None else [{"bearer": []}, {"session": []}]}
    if r.roles is not None:
        op["description"] = "Roles: " + ", ".join(sorted(r.roles))
    params = [
        {"name": p, "in": "path", "required": True,
         "schema": {"type": "integer"} if p in _INT_PARAMS else {"type": "string"}}
        for p in _PARAM.findall(r.path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "description": q.description,
         "schema": {"type": q.type, **({"format": q.format} if q.format else {})}}
        for q in r.query
    ]
    if params:
        op["parameters"] = params
    if r.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}}}}
    if r.response is None:  # a file (recordings): bytes, with Range support
        responses = {str(r.status): {"description": "the file; Range requests answer 206", "content": {
            "audio/wav": {"schema": {"type": "string", "format": "binary"}}}}}
    else:
        item = {"$ref": f"#/components/schemas/{r.response.__name__}"}
        ok_schema = {"type": "array", "items": item} if r.many else item
        responses = {str(r.status): {"description": "OK", "content": {"application/json": {"schema": ok_schema}}}}
    if r.roles is not None:
        responses["401"] = _error("not authenticated")
        responses["403"] = _error("not allowed (role, team scope, or CSRF)")
    if params and any(p["in"] == "path" for p in params):
        responses["404"] = _error("not found")
    if r.body is not None or params:
        responses["400"] = _error("malformed JSON")
        responses["413"] = _error("body too large")
        responses["415"] = _error("not application/json")
        responses["422"] = _error("invalid fields (each named)")
    if r.changes_state:
        responses["409"] = _error("conflicts with the current state")
    if r.name == "login":
        responses["401"] = _error("wrong user name or password")
        responses["429"] = _error("too many failed log-ins")
    responses["503"] = _error("starting")
    op["responses"] = responses
    return op
