"""Content hashes, reference hashes, event IDs and (room version 12) room IDs.

Spec: Server-Server API, "Signing Events" > "Calculating the content hash for
an event" and "Calculating the reference hash for an event"
(https://spec.matrix.org/v1.19/server-server-api/#signing-events); the "Event
IDs" sections of room versions 1, 3 and 4 (https://spec.matrix.org/v1.19/rooms/v3/,
``/rooms/v4/``); room version 12's room IDs (https://spec.matrix.org/v1.19/rooms/v12/
and Appendices, "Room IDs"); Appendices, "Unpadded Base64".

* The *content hash* is sha256 over the canonical JSON of the whole event
  without ``unsigned``, ``signatures`` and ``hashes``. It is stored in
  ``hashes.sha256`` and so lets a receiver tell a full event from a redacted one.
* The *reference hash* is sha256 over the canonical JSON of the *redacted*
  event without ``signatures`` and ``unsigned``. From room version 3 it is the
  event ID; in room version 12 the create event's reference hash is also the
  room ID.
"""

import base64
import binascii
import hashlib

from mxref.errors import InvalidEventFormat
from mxref.events.canonical import encode_canonical_json
from mxref.events.redaction import redacted_view
from mxref.events.room_versions import EventFormat, get_room_version

#: Keys left out of the content hash: they change in transit or depend on the hash.
_NOT_IN_CONTENT_HASH = ("unsigned", "signatures", "hashes")


def encode_unpadded_base64(data: bytes, urlsafe: bool = False) -> str:
    """Encode ``data`` as unpadded base64 (standard, or URL-safe with ``-`` and ``_``)."""
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.rstrip(b"=").decode("ascii")


def decode_base64(text: str) -> bytes:
    """Decode standard base64, with or without ``=`` padding, refusing stray characters.

    :raises ValueError: if ``text`` is not base64.
    """
    if not isinstance(text, str):
        raise ValueError("base64 value is not a string")
    unpadded = text.rstrip("=")
    try:
        return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid base64: {e}") from None


def compute_content_hash(event: dict) -> str:
    """Return the content hash of ``event`` as unpadded standard base64.

    :param event: an event in federation PDU form; never modified.
    :raises InvalidEventFormat: if the event cannot be encoded as JSON.
    Does not return a Deferred.
    """
    hashed = {key: value for key, value in event.items() if key not in _NOT_IN_CONTENT_HASH}
    return encode_unpadded_base64(hashlib.sha256(encode_canonical_json(hashed)).digest())


def check_content_hash(event: dict) -> bool:
    """Return True if ``event``'s ``hashes.sha256`` matches its content.

    A missing, non-string or non-base64 ``hashes.sha256`` gives False; so
    does an event that cannot be encoded. Padded base64 is accepted.
    Does not return a Deferred.
    """
    hashes = event.get("hashes")
    if not isinstance(hashes, dict):
        return False
    try:
        claimed = decode_base64(hashes.get("sha256"))
        actual = compute_content_hash(event)
    except (ValueError, InvalidEventFormat):
        return False
    return claimed == decode_base64(actual)


def add_content_hash(event: dict) -> dict:
    """Return a copy of ``event`` with ``hashes.sha256`` set to its content hash.

    Other entries of ``hashes`` are kept. ``event`` is not modified.
    Does not return a Deferred.
    """
    hashed = dict(event)
    old_hashes = event.get("hashes")
    hashes = dict(old_hashes) if isinstance(old_hashes, dict) else {}
    hashes["sha256"] = compute_content_hash(event)
    hashed["hashes"] = hashes
    return hashed


def compute_reference_hash(event: dict, room_version) -> bytes:
    """Return the 32-byte sha256 reference hash of ``event``.

    The event is redacted with ``room_version``'s algorithm (which drops
    ``unsigned``), ``signatures`` is removed, and the rest hashed. The event
    must be in federation PDU form: from room version 3 that form has no
    ``event_id``, and a stray one would be hashed like any other kept key.

    :param room_version: a :class:`RoomVersion` or its identifier.
    Does not return a Deferred.
    """
    version = get_room_version(room_version)
    redacted = redacted_view(event, version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(redacted, strict=version.strict_canonical_json)).digest()


def compute_event_id(event: dict, room_version) -> str:
    """Return the ID of ``event`` as ``room_version`` defines it.

    * v1, v2: the ``event_id`` the sending server chose and put in the event;
    * v3: ``$`` + the reference hash in unpadded standard base64;
    * v4 onwards: ``$`` + the reference hash in unpadded URL-safe base64.

    :raises InvalidEventFormat: for v1/v2 when ``event_id`` is missing or not a string.
    Does not return a Deferred.
    """
    version = get_room_version(room_version)
    if version.event_format is EventFormat.V1:
        event_id = event.get("event_id")
        if not isinstance(event_id, str):
            raise InvalidEventFormat(f"room version {version.identifier} events must carry an event_id")
        return event_id
    urlsafe = version.event_format is EventFormat.V3
    return "$" + encode_unpadded_base64(compute_reference_hash(event, version), urlsafe=urlsafe)


def compute_room_id(create_event: dict, room_version) -> str:
    """Return the room ID that the ``m.room.create`` event defines (room version 12 onwards).

    It is the create event's event ID with ``!`` in place of ``$``: ``!`` +
    the URL-safe unpadded base64 of its reference hash.

    :raises InvalidEventFormat: if ``create_event`` is not an ``m.room.create``
        event, carries a ``room_id``, or ``room_version`` does not derive room
        IDs from create events (earlier versions choose the room ID freely).
    Does not return a Deferred.
    """
    version = get_room_version(room_version)
    if not version.room_id_from_create_event:
        raise InvalidEventFormat(
            f"room version {version.identifier} does not derive room IDs from the create event"
        )
    if create_event.get("type") != "m.room.create":
        raise InvalidEventFormat("only an m.room.create event defines a room ID")
    if "room_id" in create_event:
        raise InvalidEventFormat(f"a room version {version.identifier} create event must not have a room_id")
    return "!" + encode_unpadded_base64(compute_reference_hash(create_event, version), urlsafe=True)
