"""Events as clients see them: the client event format, redacted events, stripped state.

Spec: Client-Server API, "Room Events" > "Client event format"
(https://spec.matrix.org/v1.19/client-server-api/#room-event-format): ``content``,
``event_id``, ``origin_server_ts``, ``room_id``, ``sender``, ``state_key`` (state events),
``type`` and ``unsigned`` (``age``, ``prev_content``, ``redacted_because``,
``transaction_id``, ``membership``); "Redactions" (a redacted event is served pruned, with
``unsigned.redacted_because``; from room version 11 servers add a top-level ``redacts`` to
redaction events for older clients, and ``content.redacts`` in older room versions);
"Stripped state" (``type``, ``state_key``, ``sender``, ``content``); "Event replacements"
(the latest edit bundled under ``unsigned["m.relations"]["m.replace"]``).
"""

from mxref.events.redaction import redacted_for_client, redacts_of
from mxref.events.room_versions import get_room_version

_CLIENT_KEYS = ("content", "origin_server_ts", "room_id", "sender", "state_key", "type")


def format_client_event(stored, now_ms, room_version, *, redaction=None, txn_id=None, include_room_id=True):
    """Serialise a :class:`~mxref.storage.records.StoredEvent` for the Client-Server API.

    :param now_ms: the current time, for ``unsigned.age``.
    :param room_version: the room's version (identifier or RoomVersion).
    :param redaction: the ``m.room.redaction`` StoredEvent that applies to this event, if any;
        the event is then served redacted with ``unsigned.redacted_because``.
    :param txn_id: the client transaction ID, given only when serving the event to the device
        that sent it.
    :param include_room_id: ``False`` for ``/sync``, whose events omit ``room_id``.
    :returns: a new dict (not a Deferred).
    """
    version = get_room_version(room_version)
    pdu = stored.pdu
    if redaction is not None:
        redaction_client = format_client_event(redaction, now_ms, version, include_room_id=include_room_id)
        pdu = redacted_for_client(dict(pdu, event_id=stored.event_id), redaction_client, version)
    event = {key: pdu[key] for key in _CLIENT_KEYS if key in pdu}
    event.setdefault("content", {})
    event["event_id"] = stored.event_id
    event["room_id"] = stored.room_id
    if not include_room_id:
        del event["room_id"]
    if stored.type == "m.room.redaction" and redaction is None:
        target = redacts_of(pdu, version)
        if target is not None:
            event["redacts"] = target
            event["content"] = dict(event["content"], redacts=target)
    unsigned = {}
    if redaction is not None and isinstance(pdu.get("unsigned"), dict):
        unsigned["redacted_because"] = pdu["unsigned"]["redacted_because"]
    origin_ts = pdu.get("origin_server_ts")
    if isinstance(origin_ts, int):
        unsigned["age"] = max(0, now_ms - origin_ts)
    if txn_id is not None:
        unsigned["transaction_id"] = txn_id
    event["unsigned"] = unsigned
    return event


def add_replacement(client_event, replacement_client_event):
    """Bundle the most recent edit of an event: ``unsigned["m.relations"]["m.replace"]``
    holds the whole edit in client format (Client-Server API "Server-side aggregation of
    m.replace relationships"). Returns the same dict."""
    if replacement_client_event is not None:
        relations = client_event["unsigned"].setdefault("m.relations", {})
        relations["m.replace"] = replacement_client_event
    return client_event


def add_prev_content(client_event, prev_stored):
    """Add ``unsigned.prev_content`` (and ``replaces_state``) for a state event that replaced
    ``prev_stored``. Returns the same dict."""
    if prev_stored is not None:
        client_event["unsigned"]["prev_content"] = prev_stored.pdu.get("content", {})
        client_event["unsigned"]["replaces_state"] = prev_stored.event_id
    return client_event


def strip_state_event(event):
    """The stripped state form of an event dict (PDU or client format): ``type``,
    ``state_key``, ``sender`` and ``content``. Not a Deferred."""
    return {
        "type": event["type"],
        "state_key": event.get("state_key", ""),
        "sender": event["sender"],
        "content": event.get("content", {}),
    }
