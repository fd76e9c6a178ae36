"""The format check a PDU must pass before anything else is done with it.

Spec: Server-Server API, "Checks performed on receipt of a PDU", check 1 ("Is
a valid event, otherwise it is dropped",
https://spec.matrix.org/v1.19/server-server-api/#checks-performed-on-receipt-of-a-pdu);
the "Event format" of each room version (the PDU schemas ``pdu_v1``,
``pdu_v3``, ``pdu_v4``, ``pdu_v6``, ``pdu_v11``, ``pdu_v12``,
https://spec.matrix.org/v1.19/rooms/); Client-Server API, "Size limits"
(https://spec.matrix.org/v1.19/client-server-api/#size-limits); the
"Canonical JSON" section of room versions 1 and 6; Appendices, "Identifier
Grammar" (identifier syntax, via :mod:`mxref.types`).

What is checked, in order:

1. the keys every PDU has, with their JSON types (``sender``,
   ``origin_server_ts``, ``type``, ``content``, ``depth``, ``hashes`` with a
   string ``sha256``, ``signatures`` as server -> key ID -> string,
   ``auth_events`` and ``prev_events``), plus ``state_key``, ``unsigned`` and
   (before v11) ``redacts`` when present;
2. ``room_id``: ``!opaque:server`` before v12; from v12 the hash form, and
   absent from the ``m.room.create`` event;
3. ``event_id`` (v1, v2 only): present, ``$opaque:server``;
4. ``prev_events`` (at most 20) and ``auth_events`` (at most 10):
   ``[event_id, {"sha256": ...}]`` pairs in v1/v2, plain event IDs from v3,
   each a ``$`` string of at most 255 bytes. The finer per-version grammar
   is not demanded of references: an ill-formed one names an event that
   cannot exist, which surfaces when the event is fetched, as with any
   other unknown ID;
5. sizes: ``type`` and ``state_key`` at most 255 bytes, identifiers at most
   255 bytes, the whole event at most 65536 bytes of canonical JSON;
6. ``depth`` between 0 and the room version's maximum;
7. from room version 6, strict canonical JSON throughout the event.

Rules that need other events or room state (auth rules, whether ``room_id``
names an accepted create event) are not format checks and live elsewhere.
"""

from mxref.errors import InvalidEventFormat, InvalidIdentifier
from mxref.events.canonical import check_canonical_json, encode_canonical_json
from mxref.events.room_versions import EventFormat, get_room_version
from mxref.types import MAX_IDENTIFIER_BYTES, EventID, RoomID, UserID

#: The largest PDU, in bytes of canonical JSON including signatures.
MAX_PDU_BYTES = 65536
#: The longest ``type`` or ``state_key``, in UTF-8 bytes.
MAX_TYPE_OR_STATE_KEY_BYTES = 255
#: At most this many ``prev_events``.
MAX_PREV_EVENTS = 20
#: At most this many ``auth_events``.
MAX_AUTH_EVENTS = 10


def validate_pdu_format(event, room_version) -> None:
    """Raise :class:`InvalidEventFormat` unless ``event`` is a well-formed PDU of ``room_version``.

    :param event: the PDU as received (a dict decoded from JSON); never modified.
    :param room_version: a :class:`RoomVersion` or its identifier.
    :raises InvalidEventFormat: naming the first rule the event breaks.
    Returns None; does not return a Deferred.
    """
    version = get_room_version(room_version)
    if not isinstance(event, dict):
        raise InvalidEventFormat("a PDU must be a JSON object")

    _require(event, "sender", str)
    _require(event, "origin_server_ts", int)
    _require(event, "type", str)
    _require(event, "content", dict)
    _require(event, "depth", int)
    _check_hashes(event)
    _check_signatures(event)
    for key, expected in (("state_key", str), ("unsigned", dict)):
        if key in event:
            _require(event, key, expected)
    if "redacts" in event and not version.redacts_in_content:
        _require(event, "redacts", str)

    _check_identifier(UserID.parse, event["sender"], "sender")
    _check_room_id(event, version)
    if version.event_format is EventFormat.V1:
        _require(event, "event_id", str)
        _check_identifier(EventID.parse, event["event_id"], "event_id", version)
    _check_references(event, "prev_events", MAX_PREV_EVENTS, version)
    _check_references(event, "auth_events", MAX_AUTH_EVENTS, version)

    for key in ("type", "state_key"):
        if key in event and len(event[key].encode("utf-8", "surrogatepass")) > MAX_TYPE_OR_STATE_KEY_BYTES:
            raise InvalidEventFormat(f"{key} is longer than {MAX_TYPE_OR_STATE_KEY_BYTES} bytes")

    if not 0 <= event["depth"] <= version.max_depth:
        raise InvalidEventFormat(f"depth {event['depth']} is outside 0 to {version.max_depth}")

    if version.strict_canonical_json:
        check_canonical_json(event)
    size = len(encode_canonical_json(event))
    if size > MAX_PDU_BYTES:
        raise InvalidEventFormat(f"event is {size} bytes of canonical JSON; the limit is {MAX_PDU_BYTES}")


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "an array"}


def _require(event: dict, key: str, expected: type) -> None:
    """Raise unless ``event[key]`` exists and has JSON type ``expected`` (booleans are not integers)."""
    if key not in event:
        raise InvalidEventFormat(f"PDU has no {key}")
    _check_type(event[key], expected, key)


def _check_type(value, expected: type, what: str) -> None:
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InvalidEventFormat(f"{what} must be {_TYPE_NAMES[expected]}")


def _check_hashes(event: dict) -> None:
    _require(event, "hashes", dict)
    if "sha256" not in event["hashes"]:
        raise InvalidEventFormat("hashes has no sha256")
    _check_type(event["hashes"]["sha256"], str, "hashes.sha256")


def _check_signatures(event: dict) -> None:
    _require(event, "signatures", dict)
    for server_name, entry in event["signatures"].items():
        _check_type(entry, dict, f"signatures of {server_name}")
        for key_id, signature in entry.items():
            _check_type(signature, str, f"signature {server_name} {key_id}")


def _check_identifier(parse, value, what: str, *args) -> None:
    """Parse ``value`` with a :mod:`mxref.types` parser, turning its error into a format error."""
    try:
        parse(value, *args)
    except InvalidIdentifier as e:
        raise InvalidEventFormat(f"{what}: {e.msg}") from None


def _check_room_id(event: dict, version) -> None:
    """``room_id`` is required, except on the v12 create event, which must not have one."""
    if version.room_id_from_create_event and event["type"] == "m.room.create":
        if "room_id" in event:
            raise InvalidEventFormat(
                f"a room version {version.identifier} m.room.create event must not have a room_id"
            )
        return
    _require(event, "room_id", str)
    _check_identifier(RoomID.parse, event["room_id"], "room_id", version)


def _check_references(event: dict, key: str, limit: int, version) -> None:
    """Check ``prev_events``/``auth_events``: a list of at most ``limit`` references in the version's form."""
    _require(event, key, list)
    references = event[key]
    if len(references) > limit:
        raise InvalidEventFormat(f"{key} lists {len(references)} events; the limit is {limit}")
    for reference in references:
        if version.event_format is EventFormat.V1:
            # v1/v2: [event_id, {"sha256": reference hash}]
            if not (isinstance(reference, list) and len(reference) == 2):
                raise InvalidEventFormat(
                    f"each of {key} must be an [event_id, hashes] pair in this room version"
                )
            event_id, hashes = reference
            _check_type(hashes, dict, f"hashes in {key}")
            if not isinstance(hashes.get("sha256"), str):
                raise InvalidEventFormat(f"hashes in {key} must have a string sha256")
        else:
            event_id = reference
        _check_type(event_id, str, f"event IDs in {key}")
        if (
            not event_id.startswith("$")
            or len(event_id.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES
        ):
            raise InvalidEventFormat(f"{key} entry {event_id!r} is not a '$' event ID of at most 255 bytes")
