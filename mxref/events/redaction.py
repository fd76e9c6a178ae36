"""Redaction: strip an event down to the keys the protocol needs, per room version.

Spec: Client-Server API, "Redactions"
(https://spec.matrix.org/v1.19/client-server-api/#redactions), and the
"Redactions" section of each room version page: v1 (used by rooms v1-v5),
v6 (v6-v7), v8, v9 (v9-v10) and v11 (v11-v12), https://spec.matrix.org/v1.19/rooms/.

The same algorithm serves three purposes: hiding the content of a redacted
event, choosing what an event's signatures and reference hash cover
(:mod:`mxref.events.signing`, :mod:`mxref.events.hashing`), and falling back to
when a received event's content hash does not match.

Every algorithm keeps a fixed list of top-level keys and drops all others
(``unsigned`` included), then keeps a fixed list of ``content`` keys for a few
event types and empties ``content`` for all others. The rules below are the
spec's lists written as data, one entry per :class:`RedactionRules` member.
"""

from mxref.errors import InvalidEventFormat
from mxref.events.room_versions import RedactionRules, get_room_version

#: Top-level keys kept by the algorithms of room versions 1 to 10.
_TOP_LEVEL_KEYS_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)

#: Room version 11 no longer keeps ``origin``, ``membership`` and ``prev_state``.
_TOP_LEVEL_KEYS_V11 = _TOP_LEVEL_KEYS_V1 - {"origin", "membership", "prev_state"}

_POWER_LEVELS_KEYS_V1 = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)

#: Content keys kept, per event type, for each algorithm. ``None`` keeps all of ``content``.
_CONTENT_KEYS_V1 = {
    "m.room.member": ("membership",),
    "m.room.create": ("creator",),
    "m.room.join_rules": ("join_rule",),
    "m.room.power_levels": _POWER_LEVELS_KEYS_V1,
    "m.room.aliases": ("aliases",),
    "m.room.history_visibility": ("history_visibility",),
}
# v6: m.room.aliases is no longer protected.
_CONTENT_KEYS_V6 = {t: keys for t, keys in _CONTENT_KEYS_V1.items() if t != "m.room.aliases"}
# v8: join rules keep "allow" (restricted rooms).
_CONTENT_KEYS_V8 = dict(_CONTENT_KEYS_V6, **{"m.room.join_rules": ("join_rule", "allow")})
# v9: member events keep "join_authorised_via_users_server".
_CONTENT_KEYS_V9 = dict(
    _CONTENT_KEYS_V8, **{"m.room.member": ("membership", "join_authorised_via_users_server")}
)
# v11: create keeps everything, power levels keep "invite", redactions keep
# "redacts"; member events also keep third_party_invite.signed (handled below).
_CONTENT_KEYS_V11 = dict(
    _CONTENT_KEYS_V9,
    **{
        "m.room.create": None,
        "m.room.power_levels": _POWER_LEVELS_KEYS_V1 + ("invite",),
        "m.room.redaction": ("redacts",),
    },
)

_RULES = {
    RedactionRules.V1: (_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V1),
    RedactionRules.V6: (_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V6),
    RedactionRules.V8: (_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V8),
    RedactionRules.V9: (_TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V9),
    RedactionRules.V11: (_TOP_LEVEL_KEYS_V11, _CONTENT_KEYS_V11),
}

#: ``unsigned`` fields that describe how the event is served rather than what it
#: said, and so survive in :func:`redacted_for_client`. See that function.
_CLIENT_UNSIGNED_KEPT = ("age", "age_ts", "transaction_id", "membership", "replaces_state")


def redact(event: dict, room_version) -> dict:
    """Return the redacted form of ``event`` under ``room_version``'s algorithm.

    :param event: an event in federation PDU form; never modified.
    :param room_version: a :class:`RoomVersion` or its identifier.
    :returns: a new dict sharing no mutable parts with ``event``; it has no
        ``unsigned``. Applying :func:`redact` again changes nothing.
        Does not return a Deferred.
    """
    return _redact(event, room_version, _copy_json)


def redacted_view(event: dict, room_version) -> dict:
    """Like :func:`redact`, but the result shares the kept values with ``event`` instead of
    copying them: only its top-level dict and its ``content`` dict are new. For code that only
    reads the result (hashing and signatures), where deep copies were a measurable cost.
    Never modify what it returns below the top level. Does not return a Deferred.
    """
    return _redact(event, room_version, _same)


def _same(value):
    return value


def _redact(event: dict, room_version, _copy_json) -> dict:
    rules = get_room_version(room_version).redaction_rules
    top_level_keys, content_keys = _RULES[rules]

    redacted = {key: _copy_json(value) for key, value in event.items() if key in top_level_keys}

    content = event.get("content")
    if not isinstance(content, dict):
        content = {}
    event_type = event.get("type")
    kept_keys = content_keys.get(event_type, ()) if isinstance(event_type, str) else ()
    if kept_keys is None:
        new_content = _copy_json(content)
    else:
        new_content = {key: _copy_json(content[key]) for key in kept_keys if key in content}
    if rules is RedactionRules.V11 and event_type == "m.room.member":
        third_party_invite = content.get("third_party_invite")
        if isinstance(third_party_invite, dict) and "signed" in third_party_invite:
            new_content["third_party_invite"] = {"signed": _copy_json(third_party_invite["signed"])}
    redacted["content"] = new_content
    return redacted


def redacted_for_client(event: dict, redaction_event: dict, room_version) -> dict:
    """Return what clients see of ``event`` once ``redaction_event`` has redacted it.

    This is :func:`redact` plus ``unsigned.redacted_because`` holding a copy of
    the redaction event, as the Client-Server API's "Redactions" section asks.
    Of the event's own ``unsigned`` fields only those describing how the event
    is served, not what it said, are kept: ``age``/``age_ts`` (timing),
    ``transaction_id`` (lets the sending client match its echo), ``membership``
    (the requesting user's membership at the event) and ``replaces_state``.
    ``prev_content`` and anything else a server put there is dropped, so no
    trace of the redacted content remains.

    The redaction event is copied as given; adding the compatibility copy of
    ``redacts`` (top level in v11+, in ``content`` before) is for the code that
    formats events for clients.

    :param event: the redacted event, federation form; never modified.
    :param redaction_event: the ``m.room.redaction`` event; never modified.
    :param room_version: a :class:`RoomVersion` or its identifier.
    :raises InvalidEventFormat: if both events carry IDs and the redaction
        does not target ``event``.
    :returns: a new dict. Does not return a Deferred.
    """
    target = redacts_of(redaction_event, room_version)
    event_id = event.get("event_id")
    if isinstance(event_id, str) and target is not None and target != event_id:
        raise InvalidEventFormat(f"redaction targets {target}, not {event_id}")
    redacted = redact(event, room_version)
    old_unsigned = event.get("unsigned")
    unsigned = {}
    if isinstance(old_unsigned, dict):
        unsigned = {
            key: _copy_json(old_unsigned[key]) for key in _CLIENT_UNSIGNED_KEPT if key in old_unsigned
        }
    unsigned["redacted_because"] = _copy_json(redaction_event)
    redacted["unsigned"] = unsigned
    return redacted


def redacts_of(event: dict, room_version):
    """Return the ID of the event that the redaction ``event`` targets, or ``None``.

    Room versions 1-10 carry it at the top level as ``redacts``; from v11 it is
    ``content.redacts`` (the copy the v11 redaction algorithm protects). When
    the room version's own place is empty the other place is used, because
    servers add that copy for clients of the other convention.

    :param event: any event; non-redaction events give ``None``.
    :param room_version: a :class:`RoomVersion` or its identifier.
    :returns: the targeted event ID (a string) or ``None`` when there is none.
        Does not return a Deferred.
    """
    if event.get("type") != "m.room.redaction":
        return None
    content = event.get("content")
    in_content = content.get("redacts") if isinstance(content, dict) else None
    at_top_level = event.get("redacts")
    if get_room_version(room_version).redacts_in_content:
        places = (in_content, at_top_level)
    else:
        places = (at_top_level, in_content)
    for candidate in places:
        if isinstance(candidate, str):
            return candidate
    return None


def _copy_json(value):
    """A deep copy of a JSON value (dicts, lists and immutable leaves)."""
    if isinstance(value, dict):
        return {key: _copy_json(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_copy_json(member) for member in value]
    return value
