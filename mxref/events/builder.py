"""Build this server's new events: choose prev_events, depth and auth_events, lay the PDU out
as the room version wants it, then hash and sign it.

Spec (v1.19):

* Server-Server API, "PDUs" and the per-version PDU schemas
  (https://spec.matrix.org/v1.19/server-server-api/#pdus): which keys a PDU has in each room
  version. Versions 1 and 2 carry a sender-chosen ``event_id`` and reference other events as
  ``[event_id, {"sha256": reference_hash}]`` pairs; from version 3 the event ID is derived from
  the reference hash, is not sent, and references are plain event IDs. Room version 12's
  ``m.room.create`` has no ``room_id``: the room ID is derived from it
  (https://spec.matrix.org/v1.19/rooms/v12/).
* The same schemas on ``depth``: "the maximum depth of the ``prev_events``, plus one. Must be
  less than the maximum value for an integer (2^63 - 1, or 2^53 - 1 from room version 6). If
  the room's depth is already at the limit, the depth must be set to the limit." The create
  event, the root of the graph, has depth 1 (Specification overview, "Room structure").
* The same schemas on limits: ``prev_events`` holds at most 20 events and ``auth_events`` at
  most 10.
* Server-Server API, "Auth events selection"
  (https://spec.matrix.org/v1.19/server-server-api/#auth-events-selection): the create event
  (not in room version 12), the current power levels, the sender's membership and, for
  membership events, the target's membership, the join rules (join, invite, knock), the
  ``m.room.third_party_invite`` named by the invite's token and the member event of
  ``join_authorised_via_users_server`` for restricted joins. The list of wanted
  ``(type, state_key)`` pairs comes from :func:`mxref.events.authrules.auth_types_for_event`,
  so the builder and the auth rules can never disagree about it.
* Room version 11, "Moving the ``redacts`` property of ``m.room.redaction`` events to a
  ``content`` property" (https://spec.matrix.org/v1.19/rooms/v11/): from version 11 ``redacts``
  is part of ``content``. The spec asks servers to *also* add a top-level ``redacts`` "when
  serving such events over the Client-Server API", so that copy belongs to the client
  serialisation, not to the PDU: the PDU built here has ``content.redacts`` only, as the
  version 11 PDU schema (which has no top-level ``redacts``) describes.

Everything here is pure: no reactor, no storage, the clock reading (``origin_server_ts``) and
randomness (for version 1 and 2 event IDs) are passed in.
"""

import os

from mxref.events.authrules import auth_types_for_event
from mxref.events.hashing import (
    compute_event_id,
    compute_reference_hash,
    compute_room_id,
    encode_unpadded_base64,
)
from mxref.events.room_versions import EventFormat, get_room_version
from mxref.events.signing import sign_event

#: How many forward extremities a new event cites at most. The spec allows 20
#: ``prev_events``; we keep 10, the deepest ones, so that a room with many extremities (after a
#: partition, or a burst of concurrent events from many servers) converges over a few events
#: while each event stays small and cheap to authorise. The extremities left out stay
#: extremities and are cited by the next events.
MAX_PREV_EVENTS = 10

#: The spec's own bound on ``prev_events`` (PDU schemas, all room versions).
SPEC_MAX_PREV_EVENTS = 20

#: The spec's bound on ``auth_events``; auth events selection never needs more than 6.
SPEC_MAX_AUTH_EVENTS = 10

#: Random bytes in the opaque part of a room version 1 or 2 event ID (24 base64 characters).
_EVENT_ID_RANDOM_BYTES = 18


def select_prev_events(forward_extremities, limit: int = MAX_PREV_EVENTS) -> list:
    """Choose which forward extremities a new event cites as its ``prev_events``.

    :param forward_extremities: iterable of ``(event_id, depth)`` or, for room versions 1 and
        2, ``(event_id, depth, reference_hashes)`` tuples, where ``reference_hashes`` is the
        ``{"sha256": ...}`` object to cite the event with.
    :param limit: the most entries to keep (default :data:`MAX_PREV_EVENTS`).
    :return: at most ``limit`` of the given tuples, deepest first; among equally deep events
        the one with the smaller event ID comes first, so the choice does not depend on the
        order of the input. Does not return a Deferred.
    """
    ordered = sorted(forward_extremities, key=lambda entry: (-entry[1], entry[0]))
    return ordered[:limit]


def depth_after(prev_depths, room_version) -> int:
    """Return the ``depth`` of an event whose prev events have ``prev_depths``.

    One more than the deepest prev event, and never more than the room version's maximum
    (2**63 - 1, or 2**53 - 1 from version 6): at the limit the depth stays at the limit. An
    event without prev events (only ``m.room.create``) has depth 1. Does not return a Deferred.
    """
    version = get_room_version(room_version)
    depth = max(prev_depths, default=0) + 1
    return min(depth, version.max_depth)


def select_auth_events(event: dict, current_state, room_version) -> list:
    """Return the events of ``current_state`` that authorise ``event``, in selection order.

    :param event: the new event; ``type``, ``sender``, ``state_key`` and ``content`` are read.
    :param current_state: mapping of ``(type, state_key)`` to event dicts; the state that the
        new event will be authorised against.
    :param room_version: a :class:`RoomVersion` or its identifier.
    :return: a list of event dicts without duplicates. The create event is left out in room
        version 12, where the room ID already names it. Does not return a Deferred.
    """
    version = get_room_version(room_version)
    if event.get("type") == "m.room.create" and event.get("state_key") == "":
        return []
    selected = []
    seen = set()
    for key in auth_types_for_event(event, version):
        if key in seen:
            continue
        seen.add(key)
        if version.room_id_from_create_event and key == ("m.room.create", ""):
            continue
        auth_event = current_state.get(key)
        if auth_event is not None:
            selected.append(auth_event)
    return selected


def _reference_hashes(event: dict, room_version) -> dict:
    """The ``{"sha256": ...}`` object that room versions 1 and 2 cite ``event`` with."""
    return {"sha256": encode_unpadded_base64(compute_reference_hash(event, room_version))}


def _random_event_id(server_name: str, random_source) -> str:
    """A room version 1/2 event ID: ``$`` + random URL-safe base64 + ``:`` + our server name."""
    opaque = encode_unpadded_base64(random_source(_EVENT_ID_RANDOM_BYTES), urlsafe=True)
    return f"${opaque}:{server_name}"


def _cite_prev_events(chosen, version) -> list:
    """Lay chosen ``prev_events`` entries out in the room version's reference format."""
    if version.event_format is not EventFormat.V1:
        return [entry[0] for entry in chosen]
    references = []
    for entry in chosen:
        if len(entry) < 3 or not isinstance(entry[2], dict):
            raise ValueError(
                f"room version {version.identifier} cites prev events with their reference "
                f"hashes: pass (event_id, depth, {{'sha256': ...}}) for {entry[0]!r}"
            )
        references.append([entry[0], dict(entry[2])])
    return references


def _cite_auth_events(auth_events, version) -> list:
    """Lay selected auth events out in the room version's reference format."""
    if version.event_format is not EventFormat.V1:
        return [_event_id_of(event, version) for event in auth_events]
    return [[event["event_id"], _reference_hashes(event, version)] for event in auth_events]


def _event_id_of(event: dict, version) -> str:
    """The ID of a state event: its ``event_id`` key when it is stored with one (mxref keeps
    the computed ID on stored events), else computed from its PDU form."""
    event_id = event.get("event_id")
    if isinstance(event_id, str):
        return event_id
    return compute_event_id(event, version)


def build_event(
    *,
    room_version,
    room_id: str,
    sender: str,
    event_type: str,
    content: dict,
    state_key=None,
    prev_events,
    current_state,
    origin_server_ts: int,
    server_name: str,
    signing_key,
    redacts=None,
    unsigned=None,
    random_source=os.urandom,
) -> dict:
    """Build, hash and sign a new event (any type but ``m.room.create``; see
    :func:`build_create_event`).

    :param room_version: a :class:`RoomVersion` or its identifier.
    :param room_id: the room the event belongs to.
    :param sender: the user ID sending the event; must belong to ``server_name``.
    :param event_type: the event ``type``.
    :param content: the event ``content``; copied, never modified.
    :param state_key: the ``state_key`` for a state event, ``None`` for a message event.
    :param prev_events: the room's current forward extremities as ``(event_id, depth)``
        tuples; room versions 1 and 2 need ``(event_id, depth, {"sha256": reference_hash})``.
        At most :data:`MAX_PREV_EVENTS` of them, the deepest, are cited.
    :param current_state: mapping of ``(type, state_key)`` to event dicts: the state the new
        event will be authorised against. Its auth events are chosen from it. The dicts may be
        bare PDUs or stored events carrying their ``event_id`` (used as is when present).
    :param origin_server_ts: the sending time in milliseconds since the epoch.
    :param server_name: our server name, the name the signature is made under.
    :param signing_key: our signing key (as produced by
        :func:`mxref.events.signing.generate_signing_key`).
    :param redacts: for ``m.room.redaction``, the ID of the redacted event: top-level in room
        versions 1-10, inside ``content`` from version 11.
    :param unsigned: optional ``unsigned`` data to attach (neither hashed nor signed).
    :param random_source: a callable ``n -> n random bytes`` for the opaque part of room
        version 1/2 event IDs; inject a deterministic one in tests.
    :return: the signed PDU as a new dict. From room version 3 it has no ``event_id``: use
        :func:`mxref.events.hashing.compute_event_id`. Does not return a Deferred.
    :raises ValueError: for an ``m.room.create`` event, no prev events, or room version 1/2
        prev events without reference hashes.
    """
    version = get_room_version(room_version)
    if event_type == "m.room.create" and state_key == "":
        raise ValueError("use build_create_event for m.room.create")
    chosen = select_prev_events(prev_events)
    if not chosen:
        raise ValueError("an event other than m.room.create needs at least one prev event")

    event_content = dict(content)
    event = {
        "room_id": room_id,
        "sender": sender,
        "type": event_type,
        "content": event_content,
        "origin_server_ts": origin_server_ts,
        "depth": depth_after((entry[1] for entry in chosen), version),
        "prev_events": _cite_prev_events(chosen, version),
    }
    if state_key is not None:
        event["state_key"] = state_key
    if redacts is not None:
        if version.redacts_in_content:
            event_content["redacts"] = redacts
        else:
            event["redacts"] = redacts
    event["auth_events"] = _cite_auth_events(select_auth_events(event, current_state, version), version)
    if version.event_format is EventFormat.V1:
        event["event_id"] = _random_event_id(server_name, random_source)
    return _hash_and_sign(event, version, server_name, signing_key, unsigned)


def build_create_event(
    *,
    room_version,
    creator: str,
    content: dict,
    origin_server_ts: int,
    server_name: str,
    signing_key,
    room_id=None,
    additional_creators=None,
    random_source=os.urandom,
):
    """Build, hash and sign a room's ``m.room.create`` event.

    :param room_version: a :class:`RoomVersion` or its identifier; written into
        ``content.room_version`` unless ``content`` already has one.
    :param creator: the creating user, the event's ``sender``. Versions 1-10 also record it as
        ``content.creator`` (unless given); from version 11 the sender alone names the creator.
    :param content: further create content (``m.federate``, ``type``, ``predecessor``...).
    :param origin_server_ts: the creation time in milliseconds since the epoch.
    :param server_name: our server name.
    :param signing_key: our signing key.
    :param room_id: required for room versions 1-11 (the caller chooses ``!opaque:server``);
        must be ``None`` for version 12, whose create event has no ``room_id``.
    :param additional_creators: room version 12 only: further user IDs with creator power,
        written as ``content.additional_creators``.
    :param random_source: as for :func:`build_event` (room version 1/2 event IDs).
    :return: ``(event, room_id)``: the signed PDU and the room ID (for version 12 derived with
        :func:`mxref.events.hashing.compute_room_id`). Does not return a Deferred.
    :raises ValueError: if ``room_id`` or ``additional_creators`` does not fit the room version.
    """
    version = get_room_version(room_version)
    create_content = dict(content)
    create_content.setdefault("room_version", version.identifier)
    if not version.implicit_room_creator:
        create_content.setdefault("creator", creator)
    if additional_creators is not None:
        if not version.privileged_creators:
            raise ValueError(f"room version {version.identifier} has no additional_creators")
        create_content["additional_creators"] = list(additional_creators)

    event = {
        "sender": creator,
        "type": "m.room.create",
        "state_key": "",
        "content": create_content,
        "origin_server_ts": origin_server_ts,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
    }
    if version.room_id_from_create_event:
        if room_id is not None:
            raise ValueError(f"room version {version.identifier} derives the room ID; pass room_id=None")
    else:
        if room_id is None:
            raise ValueError(f"room version {version.identifier} needs a room_id for the create event")
        event["room_id"] = room_id
    if version.event_format is EventFormat.V1:
        event["event_id"] = _random_event_id(server_name, random_source)
    signed = _hash_and_sign(event, version, server_name, signing_key, None)
    if version.room_id_from_create_event:
        room_id = compute_room_id(signed, version)
    return signed, room_id


def _hash_and_sign(event: dict, version, server_name: str, signing_key, unsigned) -> dict:
    """Add the content hash and our signature; attach ``unsigned`` afterwards."""
    signed = sign_event(event, server_name, signing_key, version)
    if unsigned is not None:
        signed["unsigned"] = dict(unsigned)
    return signed
