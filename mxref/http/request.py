"""Parse the parts of an HTTP request that resources read: the JSON body and query parameters.

Every failure becomes a :class:`mxref.errors.MatrixError` that the resource
layer turns into a standard error response.

Spec: Client-Server API, "API Standards" (JSON objects in UTF-8; ``M_NOT_JSON``
for a body that is not JSON, ``M_BAD_JSON`` for valid JSON of the wrong shape,
``M_MISSING_PARAM`` / ``M_INVALID_PARAM`` for parameters), and the Appendices,
"Conventions for Matrix APIs".
"""

import json
import math
import re

from mxref.errors import MatrixError

#: Raw body text that might contain a UTF-16 surrogate escape (``\\ud800``);
#: only then is the decoded value walked to find unpaired surrogates.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")

_INTEGER = re.compile(r"-?[0-9]+")


def _refuse_constant(name):
    """Refuse the non-standard JSON constants ``NaN``, ``Infinity`` and ``-Infinity``."""
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    """Parse a JSON number with a fraction or exponent, refusing ones too large for a double (``1e400``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _has_unpaired_surrogate(value) -> bool:
    """Whether a decoded JSON value holds a string that cannot be encoded as UTF-8."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def decode_json(data: bytes):
    """Decode a JSON text received from a client or a remote server.

    The text must be UTF-8 (RFC 8259 section 8.1; other encodings, which
    Python's ``json`` would guess from the first bytes, are refused), must not
    use ``NaN``/``Infinity`` or numbers that overflow to infinity, and must not hold unpaired UTF-16 surrogates
    (such strings cannot be stored or signed as UTF-8).

    :param data: the raw bytes.
    :returns: the decoded value (not a Deferred).
    :raises MatrixError: 400 ``M_NOT_JSON`` when the bytes are not such JSON.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MatrixError(400, "M_NOT_JSON", "Content not JSON: not valid UTF-8")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MatrixError(400, "M_NOT_JSON", "Content not JSON: nested too deeply")
    except ValueError as e:
        raise MatrixError(400, "M_NOT_JSON", f"Content not JSON: {e}")
    if _SURROGATE_ESCAPE.search(text) and _has_unpaired_surrogate(value):
        raise MatrixError(400, "M_NOT_JSON", "Content not JSON: unpaired UTF-16 surrogate")
    return value


def read_body(request) -> bytes:
    """The whole request body as bytes (``b""`` when there is none)."""
    content = getattr(request, "content", None)
    if content is None:
        return b""
    content.seek(0)
    data = content.read()
    content.seek(0)
    return data


def parse_json_object(request, allow_empty_body: bool = False) -> dict:
    """Parse the request body as a JSON object.

    :param request: a ``twisted.web`` request.
    :param allow_empty_body: return ``{}`` for an empty body instead of
        refusing it (for endpoints such as ``/logout`` that clients call
        without a body).
    :returns: the object, a ``dict`` (not a Deferred).
    :raises MatrixError: 400 ``M_NOT_JSON`` for undecodable or invalid JSON,
        400 ``M_BAD_JSON`` when the JSON is valid but not an object.
    """
    data = read_body(request)
    if allow_empty_body and not data.strip():
        return {}
    value = decode_json(data)
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", "Content must be a JSON object")
    return value


def _type_name(expected) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean",
             dict: "object", list: "array", type(None): "null"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def _has_type(value, expected) -> bool:
    """``isinstance`` that does not count ``True``/``False`` as integers."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def require_fields(body: dict, fields: dict) -> dict:
    """Check that a JSON object has each named field with the given type.

    :param body: the decoded request body.
    :param fields: field name -> a Python type or tuple of types (``str``,
        ``int``, ``dict``, ``list``, ``bool``, ``(int, float)``...). ``bool``
        values never satisfy ``int``.
    :returns: ``body`` itself, for chaining (not a Deferred).
    :raises MatrixError: 400 ``M_MISSING_PARAM`` when a field is absent,
        400 ``M_BAD_JSON`` when it has the wrong type (``null`` included).
    """
    for name, expected in fields.items():
        if name not in body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing parameter: {name}")
        if not _has_type(body[name], expected):
            raise MatrixError(400, "M_BAD_JSON", f"Parameter {name} must be a {_type_name(expected)}")
    return body


def _query_values(request, name: str) -> list:
    """All the values given for query parameter ``name``, decoded as UTF-8 strings."""
    raw = (getattr(request, "args", None) or {}).get(name.encode("ascii"), [])
    values = []
    for item in raw:
        if isinstance(item, str):
            values.append(item)
            continue
        try:
            values.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name} is not valid UTF-8")
    return values


def _missing(name):
    return MatrixError(400, "M_MISSING_PARAM", f"Missing query parameter: {name}")


def parse_string(request, name: str, required: bool = False, default=None, allowed=None):
    """Read a string query parameter (the first one when it is repeated).

    :param request: a ``twisted.web`` request.
    :param name: the parameter name.
    :param required: refuse the request when the parameter is absent.
    :param default: the value when absent and not required.
    :param allowed: if given, the collection of acceptable values.
    :returns: the value or ``default`` (not a Deferred).
    :raises MatrixError: 400 ``M_MISSING_PARAM`` when required and absent,
        400 ``M_INVALID_PARAM`` when not UTF-8 or not in ``allowed``.
    """
    values = _query_values(request, name)
    if not values:
        if required:
            raise _missing(name)
        return default
    value = values[0]
    if allowed is not None and value not in allowed:
        choices = ", ".join(sorted(allowed))
        raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name} must be one of: {choices}")
    return value


def parse_strings(request, name: str, default=None) -> list:
    """Read every value of a repeated string query parameter (such as ``ver=`` on ``make_join``).

    :returns: the list of values in request order, or ``default`` (``[]`` when
        not given) when the parameter is absent. Not a Deferred.
    :raises MatrixError: 400 ``M_INVALID_PARAM`` when a value is not UTF-8.
    """
    values = _query_values(request, name)
    if not values:
        return [] if default is None else default
    return values


def parse_integer(request, name: str, required: bool = False, default=None,
                  minimum=None, maximum=None):
    """Read an integer query parameter written as decimal digits with an optional ``-``.

    :param minimum: if given, the smallest acceptable value.
    :param maximum: if given, the largest acceptable value.
    :returns: the ``int`` or ``default`` (not a Deferred).
    :raises MatrixError: 400 ``M_MISSING_PARAM`` when required and absent,
        400 ``M_INVALID_PARAM`` when not an integer or out of range.
    """
    value = parse_string(request, name, required=required)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value):
        raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name} must be an integer")
    number = int(value)
    if minimum is not None and number < minimum:
        raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name} must be at most {maximum}")
    return number


def parse_boolean(request, name: str, required: bool = False, default=None):
    """Read a boolean query parameter, spelled ``true`` or ``false`` as the spec does.

    :returns: ``True``, ``False`` or ``default`` (not a Deferred).
    :raises MatrixError: 400 ``M_MISSING_PARAM`` when required and absent,
        400 ``M_INVALID_PARAM`` for any other spelling.
    """
    value = parse_string(request, name, required=required)
    if value is None:
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name} must be 'true' or 'false'")


def parse_json_from_query(request, name: str, required: bool = False, default=None):
    """Read a query parameter that carries JSON text, such as ``filter=`` on ``/sync`` and ``/messages``.

    :returns: the decoded JSON value or ``default`` (not a Deferred).
    :raises MatrixError: 400 ``M_MISSING_PARAM`` when required and absent,
        400 ``M_NOT_JSON`` when the text is not JSON.
    """
    value = parse_string(request, name, required=required)
    if value is None:
        return default
    return decode_json(value.encode("utf-8"))


def parse_json_object_from_query(request, name: str, required: bool = False, default=None):
    """Like :func:`parse_json_from_query`, and the value must be a JSON object.

    :raises MatrixError: also 400 ``M_BAD_JSON`` when the JSON is not an object.
    """
    value = parse_json_from_query(request, name, required=required, default=default)
    if value is not default and not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", f"Query parameter {name} must be a JSON object")
    return value
