"""Canonical JSON: the one byte encoding of a JSON value that every server hashes and signs.

Spec: Appendices, "Signing JSON" > "Canonical JSON"
(https://spec.matrix.org/v1.19/appendices/#canonical-json), and the room
version pages' "Canonical JSON" sections (v1-v5: not strictly enforced;
v6 onwards: strictly enforced, https://spec.matrix.org/v1.19/rooms/v6/).

Canonical JSON is the shortest UTF-8 JSON text with object keys sorted by code
point, numbers written as plain integers and only the mandatory string escapes.
The byte-level work is done by the ``canonicaljson`` package; this module adds
what the spec asks on top of it:

* numbers: a float with an integral value is written as that integer, as the
  spec's own example shows (``{"a": -0, "b": 1e10}`` becomes
  ``{"a":0,"b":10000000000}``). Other floats cannot be canonical; room
  versions 1-5 may still contain them, so :func:`encode_canonical_json`
  writes them as Python does rather than fail, and :func:`check_canonical_json`
  (the strict rule of v6 onwards) refuses them;
* values JSON cannot carry at all (NaN, infinities, strings with lone
  surrogates, non-JSON Python types) raise :class:`InvalidEventFormat`.
"""

import math

import canonicaljson

from mxref.errors import InvalidEventFormat

#: The largest integer canonical JSON allows, 2**53 - 1; the smallest is its negation.
MAX_SAFE_INTEGER = 2**53 - 1


def encode_canonical_json(value, strict: bool = False) -> bytes:
    """Encode ``value`` (a JSON-like Python value) as canonical JSON bytes.

    Integers outside the strict range are written out in full (room versions
    1-5 may contain them). Does not return a Deferred.

    :param strict: the value belongs to a room version with strict canonical JSON (6+), where
        floats are invalid anyway: skip rewriting integral floats as integers (a walk over the
        whole value that costs as much as the encoding). A float would then be written as
        Python writes it, and the event refused elsewhere.
    :raises InvalidEventFormat: if ``value`` holds something JSON cannot
        represent (NaN, infinity, a lone surrogate, a non-JSON type).
    """
    try:
        return canonicaljson.encode_canonical_json(value if strict else _integral_floats_as_ints(value))
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidEventFormat(f"value cannot be encoded as canonical JSON: {e}") from None


def check_canonical_json(value) -> None:
    """Check that ``value`` obeys the strict canonical JSON rules (room versions 6 and later).

    Allowed are ``None``, booleans, strings encodable as UTF-8, integers in
    ``[-(2**53)+1, 2**53-1]``, lists, and objects whose keys are strings.
    Does not return a Deferred.

    :raises InvalidEventFormat: naming the first offending value; floats are
        always refused, even integral ones, because the text they came from
        had a fraction or an exponent.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, int):
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise InvalidEventFormat(f"integer {item} is outside the canonical JSON range")
        elif isinstance(item, float):
            raise InvalidEventFormat(f"number {item!r} is not an integer; canonical JSON has no floats")
        elif isinstance(item, dict):
            for key, member in item.items():
                if not isinstance(key, str):
                    raise InvalidEventFormat(f"object key {key!r} is not a string")
                _check_string(key)
                pending.append(member)
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        else:
            raise InvalidEventFormat(f"{type(item).__name__} is not a JSON type")


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEventFormat("string contains a lone surrogate and is not valid UTF-8") from None


def _integral_floats_as_ints(value):
    """Return ``value`` with every finite integral float replaced by its int.

    The input is never modified. A container is copied only when something
    inside it changes, so float-free values (the usual case) come back as is.
    """
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return int(value)
        return value
    if isinstance(value, dict):
        changed = None
        for key, member in value.items():
            new = _integral_floats_as_ints(member)
            if new is not member:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, (list, tuple)):
        changed = None
        for index, member in enumerate(value):
            new = _integral_floats_as_ints(member)
            if new is not member:
                if changed is None:
                    changed = list(value)
                changed[index] = new
        return value if changed is None else changed
    return value
