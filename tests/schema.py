"""Check request and response bodies in tests against the Matrix spec's own OpenAPI documents.

The spec's machine-readable data (Matrix v1.19, Apache-2.0, see
``tests/spec/README.md`` and ``tests/spec/LICENSE``) is copied under
``tests/spec/`` with its layout intact, so relative ``$ref``s between the YAML
files resolve. Tests never read anything outside the repository.

The schemas are JSON Schema draft 2020-12 (OpenAPI 3.1). Validation uses
``jsonschema`` with a ``referencing`` registry that loads referenced files from
disk on demand. The spec's custom string formats (``mx-user-id``,
``mx-room-id``...) are checked with the sigil regexes given in
``string-formats.yaml``.

Typical use::

    validate_response("client-server/login.yaml", "/login", "post", 200, body)
    validate_request("client-server/create_room.yaml", "/createRoom", "post", body)

Paths may be given as written in the document (``/rooms/{roomId}/join``) or in
full (``/_matrix/client/v3/rooms/{roomId}/join``).
"""

import copy
import functools
import json
import re
from pathlib import Path
from urllib.parse import quote, unquote, urldefrag, urljoin, urlparse

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: The root of the copied spec data.
SPEC_ROOT = Path(__file__).resolve().parent / "spec"


class SpecLookupError(LookupError):
    """The document has no such path, method, status or JSON body."""


@functools.lru_cache(maxsize=None)
def _load_path(path: str):
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)


def _path_from_uri(uri: str) -> str:
    return unquote(urlparse(uri).path)


def _retrieve(uri: str) -> Resource:
    """Load a referenced file (YAML or JSON) as a draft 2020-12 resource."""
    return Resource.from_contents(_load_path(_path_from_uri(uri)), default_specification=DRAFT202012)


REGISTRY = Registry(retrieve=_retrieve)


def _string_format_checker() -> FormatChecker:
    """A format checker for the spec's custom formats, from the regexes in string-formats.yaml.

    The regexes are written there as ``# regex: "..."`` comments under each
    format; formats without one are accepted as they are.
    """
    checker = FormatChecker()
    current = None
    for line in (SPEC_ROOT / "string-formats.yaml").read_text(encoding="utf-8").splitlines():
        key = re.fullmatch(r"([a-z][a-z0-9-]*):\s*", line)
        if key:
            current = key.group(1)
            continue
        regex = re.fullmatch(r'\s*#\s*regex:\s*"(.*)"\s*', line)
        if regex and current:
            pattern = re.compile(regex.group(1).encode("utf-8").decode("unicode_escape"))
            checker.checks(current)(lambda value, pattern=pattern: not isinstance(value, str)
                                    or bool(pattern.search(value)))
    return checker


FORMAT_CHECKER = _string_format_checker()


def _document_uri(api_file: str) -> str:
    relative = api_file if api_file.startswith(("api/", "event-schemas/")) else f"api/{api_file}"
    path = SPEC_ROOT / relative
    if not path.is_file():
        raise SpecLookupError(f"no spec document {relative}")
    return path.as_uri()


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _node(uri: str, pointer: str):
    """The value at a JSON pointer inside the document at ``uri``."""
    node = _load_path(_path_from_uri(uri))
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise SpecLookupError(f"{uri}#{pointer} does not exist")
    return node


def _follow(uri: str, pointer: str):
    """Follow OpenAPI-level ``$ref``s (responses, request bodies) to the object they name."""
    node = _node(uri, pointer)
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target, fragment = urldefrag(urljoin(uri, node["$ref"]))
        uri, pointer = target, unquote(fragment)
        node = _node(uri, pointer)
    return uri, pointer, node


def _operation(api_file: str, path_template: str, method: str):
    uri = _document_uri(api_file)
    document = _node(uri, "")
    paths = document.get("paths", {})
    if path_template not in paths:
        base_path = (document.get("servers") or [{}])[0].get("variables", {}).get("basePath", {}).get("default", "")
        if base_path and path_template.startswith(base_path):
            path_template = path_template[len(base_path):]
    if path_template not in paths:
        raise SpecLookupError(f"{api_file} has no path {path_template}")
    pointer = f"/paths/{_escape(path_template)}/{method.lower()}"
    if method.lower() not in paths[path_template]:
        raise SpecLookupError(f"{api_file} has no {method.upper()} {path_template}")
    return uri, pointer


def _validator(uri: str, pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{uri}#{quote(pointer, safe='/~')}"},
                                registry=REGISTRY, format_checker=FORMAT_CHECKER)


def _json_content(uri: str, pointer: str, what: str):
    """The location of the ``application/json`` media type object under a response or request body."""
    uri, pointer, node = _follow(uri, pointer)
    if "application/json" not in (node.get("content") or {}):
        raise SpecLookupError(f"{what} has no application/json body")
    return _follow(uri, pointer + "/content/application~1json")


def _response_location(api_file: str, path_template: str, method: str, status: int):
    uri, pointer = _operation(api_file, path_template, method)
    responses = _node(uri, pointer + "/responses")
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return _json_content(uri, f"{pointer}/responses/{key}",
                                 f"{method.upper()} {path_template} {status}")
    raise SpecLookupError(f"{api_file} {method.upper()} {path_template} documents no {status} response")


def validate_response(api_file: str, path_template: str, method: str, status: int, body) -> None:
    """Check a response body against the spec.

    :param api_file: the OpenAPI document, relative to ``tests/spec/api/``
        (e.g. ``"client-server/login.yaml"``).
    :param path_template: the path as the spec writes it, with or without the base path.
    :param method: the HTTP method.
    :param status: the response status (falls back to ``4XX``/``default`` entries).
    :param body: the decoded JSON body.
    :raises jsonschema.ValidationError: when the body does not fit (the best match is reported).
    :raises SpecLookupError: when the spec documents no such response.
    """
    uri, pointer, _ = _response_location(api_file, path_template, method, status)
    _validator(uri, pointer + "/schema").validate(body)


def validate_request(api_file: str, path_template: str, method: str, body) -> None:
    """Check a request body against the spec (same parameters as :func:`validate_response`)."""
    uri, pointer = _operation(api_file, path_template, method)
    if "requestBody" not in _node(uri, pointer):
        raise SpecLookupError(f"{api_file} {method.upper()} {path_template} takes no request body")
    uri, pointer, _ = _json_content(uri, pointer + "/requestBody", f"{method.upper()} {path_template} request")
    _validator(uri, pointer + "/schema").validate(body)


def validate_schema(schema_file: str, value, pointer: str = "") -> None:
    """Check a value against a schema file (or a part of one), e.g. an event.

    :param schema_file: relative to ``tests/spec/``, e.g.
        ``"event-schemas/schema/m.room.member.yaml"`` or
        ``"api/server-server/definitions/pdu_v12.yaml"``.
    :param pointer: a JSON pointer inside the file (``""`` for the whole file).
    """
    path = SPEC_ROOT / schema_file
    if not path.is_file():
        raise SpecLookupError(f"no schema file {schema_file}")
    _validator(path.as_uri(), pointer).validate(value)


def _deep_merge(base, override):
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(base[key], value) if key in base else value
        return merged
    return override


def expand_example(value, base_uri: str):
    """Expand the spec's example templates as its build does.

    ``{"$ref": file, ...overrides}`` loads ``file`` (relative to ``base_uri``)
    and replaces its top-level keys with the sibling keys; ``{"allOf": [...]}``
    deep-merges the parts in order. Nested templates are expanded too.
    """
    if isinstance(value, list):
        return [expand_example(item, base_uri) for item in value]
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("$ref"), str):
        target, fragment = urldefrag(urljoin(base_uri, value["$ref"]))
        loaded = expand_example(copy.deepcopy(_node(target, unquote(fragment))), target)
        overrides = {key: expand_example(item, base_uri) for key, item in value.items() if key != "$ref"}
        return {**loaded, **overrides}
    if set(value) == {"allOf"} and isinstance(value["allOf"], list):
        merged = {}
        for part in value["allOf"]:
            merged = _deep_merge(merged, expand_example(part, base_uri))
        return merged
    return {key: expand_example(item, base_uri) for key, item in value.items()}


def example_response(api_file: str, path_template: str, method: str, status: int, name: str = None):
    """The spec's own example body for a response, expanded (see :func:`expand_example`).

    :param name: which example (the first one when not given).
    :raises SpecLookupError: when the response has no example.
    """
    uri, pointer, node = _response_location(api_file, path_template, method, status)
    examples = node.get("examples") or {}
    if not examples:
        if "example" in node:
            return expand_example(copy.deepcopy(node["example"]), uri)
        raise SpecLookupError(f"{api_file} {method.upper()} {path_template} {status} has no example")
    key = name if name is not None else next(iter(examples))
    example_uri, _, example = _follow(uri, f"{pointer}/examples/{_escape(key)}")
    return expand_example(copy.deepcopy(example["value"]), example_uri)
