"""GitHub's OpenAPI description (the vendored subset in ``spec/``): routing and validation.

The description is OpenAPI 3.0.3 with every ``$ref`` already resolved, so each operation carries
its complete schemas. OpenAPI 3.0 schemas are JSON Schema draft 4 plus a few keywords; the only
one that changes validation is ``nullable``, which :func:`to_json_schema` turns into a ``null``
type. Other OpenAPI-only keywords (``example``, ``deprecated``, ``readOnly``...) are left in place:
jsonschema ignores keywords it does not know.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

SPEC_FILE = Path(__file__).with_name("spec") / "github-rest-subset.json"
DOCS_URL = "https://docs.github.com/rest"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# A path parameter matches one segment, except these when they end a template: GitHub accepts
# slashes in a file path (`contents/{path}`), a ref (`git/ref/heads/feature/x`) and a branch.
_MULTI_SEGMENT_PARAMS = frozenset({"path", "ref", "branch"})
# `format: date-time` means RFC 3339 in JSON Schema; GitHub documents `YYYY-MM-DDTHH:MM:SSZ`.
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.ASCII)
_MAX_MESSAGE = 300


class InvalidRequest(Exception):
    """A request GitHub would refuse: the server answers ``status`` and records a violation."""

    def __init__(self, status: int, message: str, documentation_url: str = DOCS_URL) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.documentation_url = documentation_url


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an OpenAPI 3.0 Schema Object into JSON Schema draft 4 (recursively)."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: to_json_schema(sub) for name, sub in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), Mapping):
            out[key] = to_json_schema(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [to_json_schema(sub) for sub in out[key]]
    if not out.pop("nullable", False):
        return out
    if "type" not in out:
        # OpenAPI 3.0.3 ignores such a `nullable`, but GitHub's description puts it beside
        # `oneOf`/`allOf` to mean "or null" (a commit's `author`, for one).
        return {"anyOf": [out, {"type": "null"}]}
    out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def required_only(value: Any, schema: Mapping[str, Any]) -> Any:
    """Keep only the properties ``schema`` requires, recursively.

    Used to turn a documentation example into a response template: what is required stays (so
    the response still matches the schema), optional extras that describe other objects of the
    example (a parent repository, a milestone...) go.
    """
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        return {
            key: required_only(value[key], properties.get(key, {}))
            for key in schema.get("required", ())
            if key in value
        }
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [required_only(item, schema["items"]) for item in value]
    return value


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # a format only constrains strings; `type` checks the rest
    if not _DATE_TIME.fullmatch(value):
        return False
    try:  # the pattern fixes the layout; this rejects month 13, hour 25 and the like
        datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(_is_date_time)


def _first_error(validator: Draft4Validator, instance: object) -> str | None:
    error: ValidationError | None = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    # best_match descends into anyOf/oneOf alternatives; one alternative alone misleads.
    while error.parent is not None:
        error = error.parent
    return _describe(error)


def _describe(error: ValidationError) -> str:
    if error.context:  # anyOf/oneOf: say why each alternative failed
        reasons = "; ".join(dict.fromkeys(_describe(sub) for sub in error.context))
        message = f"no {error.validator} alternative matched ({reasons})"
    elif len(error.message) > _MAX_MESSAGE:  # a too-long string would be quoted whole
        message = error.message[:_MAX_MESSAGE] + "..."
    else:
        message = error.message
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {message}" if where else message


def _coerce(raw: str, schema: Mapping[str, Any]) -> object:
    """Read a query or path parameter as the type its schema declares (left as is if it isn't)."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    if kind == "array":
        return [_coerce(item, schema.get("items", {})) for item in raw.split(",")]
    return raw


@dataclass(frozen=True)
class Operation:
    """One method on one path template, as GitHub describes it."""

    method: str
    template: str
    definition: Mapping[str, Any]

    @property
    def documentation_url(self) -> str:
        return str(self.definition.get("externalDocs", {}).get("url", DOCS_URL))

    @functools.cached_property
    def _parameters(self) -> dict[tuple[str, str], tuple[Mapping[str, Any], Draft4Validator]]:
        return {
            (param["in"], param["name"]): (param, _validator(param.get("schema", {})))
            for param in self.definition.get("parameters", ())
        }

    @functools.cached_property
    def _body_validator(self) -> Draft4Validator | None:
        content = self.definition.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        return None if schema is None else _validator(schema)

    def validate(
        self, path_params: Mapping[str, str], query: Mapping[str, list[str]], body: bytes
    ) -> Any:
        """Check parameters and body against the description; return the parsed JSON body.

        Raises :class:`InvalidRequest` (404 for a bad path parameter, 422 otherwise, 400 for a
        body that is not JSON) the way GitHub does.
        """
        for (where, name), (param, validator) in self._parameters.items():
            if where == "path":
                error = _first_error(validator, _coerce(path_params[name], param["schema"]))
                if error:
                    raise InvalidRequest(404, f"path parameter {name}: {error}")
            elif where == "query":
                if name not in query:
                    if param.get("required"):
                        raise InvalidRequest(422, f"missing required query parameter {name}")
                    continue
                # GitHub reads the last value of a repeated parameter.
                error = _first_error(validator, _coerce(query[name][-1], param["schema"]))
                if error:
                    raise InvalidRequest(422, f"query parameter {name}: {error}")
        return self._parse_body(body)

    def _parse_body(self, body: bytes) -> Any:
        request_body = self.definition.get("requestBody")
        if not body.strip():
            if request_body and request_body.get("required"):
                raise InvalidRequest(422, "a JSON request body is required")
            return None
        if self._body_validator is None:
            raise InvalidRequest(422, "this operation takes no JSON request body")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise InvalidRequest(400, f"Problems parsing JSON: {exc}") from exc
        error = _first_error(self._body_validator, document)
        if error:
            raise InvalidRequest(422, f"Invalid request. {error}", self.documentation_url)
        return document

    def _response(self, status: int) -> Mapping[str, Any]:
        response = self.definition["responses"][str(status)]
        content: Mapping[str, Mapping[str, Any]] = response.get("content", {})
        return content.get("application/json", {})

    def response_template(self, status: int) -> Any:
        """The documented example of a response, reduced to what its schema requires."""
        content = self._response(status)
        examples = content.get("examples")
        example = next(iter(examples.values()))["value"] if examples else content["example"]
        return required_only(copy.deepcopy(example), content["schema"])

    def response_error(self, status: int, document: object) -> str | None:
        """Why ``document`` does not match the documented response schema (None if it does)."""
        return _first_error(_validator(self._response(status)["schema"]), document)


def _validator(schema: Mapping[str, Any]) -> Draft4Validator:
    return Draft4Validator(to_json_schema(schema), format_checker=_FORMATS)


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    operations: Mapping[str, Operation]

    @property
    def specificity(self) -> int:
        return sum(1 for segment in self.template.split("/") if segment and "{" not in segment)


def _compile(template: str) -> re.Pattern[str]:
    segments = template.split("/")
    parts = []
    for index, segment in enumerate(segments):
        match = re.fullmatch(r"\{(\w+)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
            continue
        name = match.group(1)
        last = index == len(segments) - 1
        wildcard = ".+" if last and name in _MULTI_SEGMENT_PARAMS else "[^/]+"
        parts.append(f"(?P<{name}>{wildcard})")
    return re.compile("/".join(parts))


class Spec:
    """The operations of the description, matched against request paths."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        routes = [
            _Route(
                template,
                _compile(template),
                {
                    method: Operation(method, template, item[method.lower()])
                    for method in METHODS
                    if method.lower() in item
                },
            )
            for template, item in document["paths"].items()
        ]
        # A literal segment beats a parameter: `check-suites/preferences` is not a suite id.
        self._routes = sorted(routes, key=lambda route: -route.specificity)
        self._by_template = {route.template: route for route in routes}

    def operation(self, method: str, template: str) -> Operation:
        """The operation for an exact template (KeyError if the description lacks it)."""
        return self._by_template[template].operations[method]

    def resolve(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """Find the operation serving ``method path`` (path without query, percent-encoded)."""
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match and method in route.operations:
                params = {name: unquote(value) for name, value in match.groupdict().items()}
                return route.operations[method], params
        raise InvalidRequest(404, "Not Found: no such operation in GitHub's API description")


@functools.cache
def load() -> Spec:
    """The vendored description, parsed once per process (it is 1.6 MB)."""
    return Spec(json.loads(SPEC_FILE.read_text(encoding="utf-8")))
