"""The JSON API's contract, written once: each operation declares its query,
body and response schemas (pydantic), and the same declaration parses the
request, shapes the answer and writes the OpenAPI document that
`GET /api/v1/openapi.json` serves. A view receives parsed values and returns
a schema instance; it never touches `request.args` or builds a dict.

Bad input is answered 400 with every problem named (`field: reason`), before
the view runs, so a view can rely on what it is given.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ValidationError

from app.web.errors import error_response

# Flask's rule syntax (`<id:order_id>`) to OpenAPI's (`{order_id}`).
_RULE_PARAMETER = re.compile(r"<(?:([^:>]+):)?([a-z_]+)>")


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    summary: str
    path: type[BaseModel] | None
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    # Another type than JSON (e.g. "text/csv"): the view returns the Response.
    media_type: str = "application/json"


@dataclass
class Api:
    """A blueprint whose routes are declared with schemas."""

    blueprint: Blueprint
    guard: Callable[[Callable], Callable]  # authentication, around every operation
    operations: list[Operation] = field(default_factory=list)
    # rule -> method -> (name, endpoint): one URL rule per path, registered
    # with the blueprint, so that a path value no converter accepts (an id
    # out of range) is 404 whatever the method, never 405 because another
    # method's rule looked like a match.
    _views: dict[str, dict[str, tuple[str, Callable]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.blueprint.record(self._register)

    def _register(self, state) -> None:
        for rule, views in self._views.items():

            def dispatch(_views=views, **parameters):
                method = "GET" if request.method == "HEAD" else request.method
                return _views[method][1](**parameters)

            name = next(iter(views.values()))[0]  # the first declared, for url_for
            state.add_url_rule(rule, name, dispatch, methods=list(views))

    def route(
        self,
        method: str,
        rule: str,
        *,
        path: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        media_type: str = "application/json",
    ):
        def decorate(view: Callable[..., Any]):
            summary = (view.__doc__ or view.__name__).strip().splitlines()[0]

            @functools.wraps(view)
            def endpoint(**parameters):
                arguments = {}
                try:
                    if path is not None:
                        arguments["path"] = path.model_validate(parameters)
                    if query is not None:
                        arguments["query"] = query.model_validate(request.args.to_dict(flat=True))
                    if body is not None:
                        arguments["body"] = body.model_validate(_json_body())
                except ValidationError as exc:
                    return error_response(400, "bad_request", describe(exc))
                except _NotJson as exc:
                    return error_response(400, "bad_request", str(exc))
                return _answer(view(**(arguments if path else parameters | arguments)), status)

            self._views.setdefault(rule, {})[method] = (view.__name__, self.guard(endpoint))
            checked = (400,) if path or query or body else ()
            # A path value no route matches (an unknown kind, an id too large) is 404.
            unmatched = (404,) if _RULE_PARAMETER.search(rule) and 404 not in errors else ()
            self.operations.append(
                Operation(method, rule, summary, path, query, body, response, status,
                          (*checked, 401, *unmatched, *errors), media_type)
            )  # fmt: skip
            return view

        return decorate


class _NotJson(ValueError):
    pass


def _json_body() -> object:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the parser's own limit, not a ValueError
        raise _NotJson("send a JSON object nested less deeply") from None
    if body is None:
        raise _NotJson("send a JSON object (Content-Type: application/json)")
    return body


def _answer(result, status: int) -> Response | tuple:
    if isinstance(result, Response | tuple):  # an error, or no content
        return result
    return jsonify(result.model_dump(mode="json", by_alias=True)), status


def describe(error: ValidationError) -> str:
    """Every problem, as `field: reason`, in one line."""
    problems = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        problems.append(f"{where}: {problem['msg']}")
    return "; ".join(problems)


def openapi(apis: list[tuple[str, Api]], *, title: str, version: str) -> dict:
    """The OpenAPI 3.1 document of `apis` (each with its URL prefix)."""
    components: dict[str, dict] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict] = {}
    for prefix, api in apis:
        for op in api.operations:
            path = prefix + _RULE_PARAMETER.sub(r"{\2}", op.rule)
            paths.setdefault(path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "shopToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "CareLoop's shop API token, or an App Bridge session token",
                }
            },
        },
        "security": [{"shopToken": []}],
        "paths": paths,
    }


def _operation(op: Operation, components: dict[str, dict]) -> dict:
    document: dict[str, Any] = {"summary": op.summary, "operationId": op.rule + ":" + op.method}
    path_schema = _inline(op.path, components)["properties"] if op.path else {}
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": path_schema.get(name) or _converter_schema(converter),
        }
        for converter, name in _RULE_PARAMETER.findall(op.rule)
    ]
    if op.query is not None:
        schema = _inline(op.query, components)
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", ()),
                    "schema": prop,
                }
            )
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body, components)}},
        }
    ok: dict[str, Any] = {"description": "OK" if op.status < 300 else "Created"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(op.response, components)}}
    elif op.media_type != "application/json":
        ok["content"] = {op.media_type: {"schema": {"type": "string"}}}
    if op.status == 204:
        ok = {"description": "No content"}
    responses = {str(op.status): ok}
    for status in op.errors:
        responses[str(status)] = {
            "description": _ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    document["responses"] = responses
    return document


def _converter_schema(converter: str) -> dict:
    """A path parameter's schema from its Flask converter: our id converters
    (`app.web.params`), `any(a, b)`, or a plain string."""
    if converter in ("shopify_id", "row_id", "int"):
        return {"type": "integer", "minimum": 1}
    if converter.startswith("any(") and converter.endswith(")"):
        return {"type": "string", "enum": [v.strip() for v in converter[4:-1].split(",")]}
    return {"type": "string"}


def _ref(model: type[BaseModel], components: dict[str, dict]) -> dict:
    components[model.__name__] = _inline(model, components)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _inline(model: type[BaseModel], components: dict[str, dict]) -> dict:
    """The model's schema, with the schemas it refers to moved to `components`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    return schema


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_ERROR_DESCRIPTIONS = {
    400: "Bad request: the message names each problem",
    401: "No valid token for a shop",
    404: "Not found in this shop",
    409: "Not possible in the shop's present state: the message says why",
    413: "Body too large",
    422: "Understood but refused: the message says why",
    429: "This shop already has one under way: retry after Retry-After",
    503: "Busy: retry after Retry-After",
    502: "Shopify could not be reached",
}
