"""Test factories for room events: well-formed PDU dicts with fake IDs, hashes and signatures.

:func:`make_event` builds one event for any room version (v1/v2 style
``$local:domain`` IDs and ``[id, hashes]`` references, v3+ hash-like IDs and
plain ID lists, v12 room IDs derived from the create event). :class:`RoomBuilder`
grows a room event by event, choosing ``auth_events`` with the auth events
selection and tracking the state, so tests (auth rules, state resolution) can
write ``room.join("@bob:b.example")`` instead of spelling out every field.

Nothing is really signed or hashed: signatures and hashes are placeholders in
the right shape.
"""

import hashlib
import itertools

from canonicaljson import encode_canonical_json
from unpaddedbase64 import encode_base64

from mxref.events.authrules import auth_types_for_event
from mxref.events.room_versions import EventFormat, get_room_version

_serial = itertools.count(1)

#: A placeholder signature in the shape of an ed25519 one (64 bytes, unpadded base64).
FAKE_SIGNATURE = encode_base64(b"\x00" * 64)


def server_of(user_id: str) -> str:
    """The server name of a user ID."""
    return user_id.split(":", 1)[1]


def event_id_of(event_or_id) -> str:
    """The event ID of an event dict, or the ID itself."""
    return event_or_id["event_id"] if isinstance(event_or_id, dict) else event_or_id


def _references(events, version):
    ids = [event_id_of(e) for e in events]
    if version.event_format is EventFormat.V1:
        return [
            [event_id, {"sha256": encode_base64(hashlib.sha256(event_id.encode()).digest())}]
            for event_id in ids
        ]
    return ids


def _fake_event_id(event, version) -> str:
    serial = next(_serial)
    if version.event_format is EventFormat.V1:
        return f"${serial}:{server_of(event['sender'])}"
    digest = hashlib.sha256(encode_canonical_json(event) + str(serial).encode()).digest()
    return "$" + encode_base64(digest, urlsafe=version.event_format is EventFormat.V3)


def make_event(
    type,
    sender,
    state_key=None,
    content=None,
    auth_events=(),
    prev_events=(),
    depth=1,
    origin_server_ts=0,
    room_version="10",
    room_id=None,
    redacts=None,
    signatures=None,
    event_id=None,
):
    """Build a PDU dict with a fake but well-formed ``event_id``.

    :param type: the event type.
    :param sender: the sender's user ID.
    :param state_key: a string makes a state event; None a message-like event.
    :param content: the content (default ``{}``).
    :param auth_events: events (dicts) or event IDs, in order.
    :param prev_events: events (dicts) or event IDs, in order.
    :param room_version: identifier or RoomVersion; decides the ID and reference shapes.
    :param room_id: default ``!room:example.org`` (v1-v11). In v12 the create event
        has none and other events need the room ID derived from their create event.
    :param redacts: for ``m.room.redaction``: top-level before v11, in content from v11.
    :param signatures: default: a placeholder signature from the sender's server.
    :param event_id: override the generated ID.
    """
    version = get_room_version(room_version)
    event = {
        "type": type,
        "sender": sender,
        "content": dict(content or {}),
        "auth_events": _references(auth_events, version),
        "prev_events": _references(prev_events, version),
        "depth": depth,
        "origin_server_ts": origin_server_ts,
        "hashes": {"sha256": encode_base64(b"\x00" * 32)},
    }
    if state_key is not None:
        event["state_key"] = state_key
    if not (version.room_id_from_create_event and type == "m.room.create"):
        if room_id is None:
            if version.room_id_from_create_event:
                raise ValueError("v12 events other than the create event need a room_id")
            room_id = "!room:example.org"
        event["room_id"] = room_id
    if redacts is not None:
        if version.redacts_in_content:
            event["content"]["redacts"] = redacts
        else:
            event["redacts"] = redacts
    event["event_id"] = event_id or _fake_event_id(event, version)
    event["signatures"] = (
        signatures
        if signatures is not None
        else {server_of(sender): {"ed25519:fake": FAKE_SIGNATURE}}
    )
    return event


def room_id_for_create(create_event, room_version) -> str:
    """The room ID of the room ``create_event`` creates (v12: derived from its ID)."""
    version = get_room_version(room_version)
    if version.room_id_from_create_event:
        return "!" + create_event["event_id"][1:]
    return create_event["room_id"]


class RoomBuilder:
    """Grow a room one event at a time, linearly, with auth events chosen from the state.

    Every event gets ``prev_events`` = the previous event, ``depth`` +1,
    ``origin_server_ts`` +1, and ``auth_events`` = the current state entries the
    auth events selection picks for it. Nothing is auth-checked: tests decide.

    ``room.state`` maps (type, state_key) -> event; ``room.events`` lists all events.
    ``room.auth_state()`` is the state to pass to ``check_auth`` (in v12 it
    includes the create event).
    """

    def __init__(
        self,
        room_version="10",
        creator="@alice:a.example",
        create_content=None,
        power_levels=None,
        join_rule="public",
        room_id=None,
    ):
        """Create the room: create event, creator's join, power levels, join rules.

        :param power_levels: content of the power levels event; None gives the creator
            100 (in v12 the creator is left out, having infinite power anyway); False
            sends no power levels event.
        :param join_rule: ``join_rule`` of the join rules event; None sends none.
        """
        self.version = get_room_version(room_version)
        self.creator = creator
        self.state = {}
        self.events = []
        self._ts = itertools.count(1)
        content = {"room_version": self.version.identifier}
        if not self.version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        if room_id is None and not self.version.room_id_from_create_event:
            room_id = f"!room{next(_serial)}:{server_of(creator)}"
        create = make_event(
            "m.room.create",
            creator,
            "",
            content,
            room_version=self.version,
            room_id=room_id,
            origin_server_ts=next(self._ts),
            depth=1,
        )
        self.room_id = room_id_for_create(create, self.version)
        self.create_event = create
        self._add(create)
        self.member(creator, "join")
        if power_levels is None:
            users = {} if self.version.privileged_creators else {creator: 100}
            power_levels = {"users": users}
        if power_levels is not False:
            self.send("m.room.power_levels", creator, "", power_levels)
        if join_rule is not None:
            self.send("m.room.join_rules", creator, "", {"join_rule": join_rule})

    def _add(self, event):
        self.events.append(event)
        if "state_key" in event:
            self.state[(event["type"], event["state_key"])] = event
        return event

    def auth_state(self) -> dict:
        """The current state map to check a new event against (with the create event in v12)."""
        state = dict(self.state)
        state[("m.room.create", "")] = self.create_event
        return state

    def new_event(self, type, sender, state_key=None, content=None, **fields):
        """Build (but do not add) the next event, its auth events chosen from the current state."""
        draft = {"type": type, "sender": sender, "content": content or {}}
        if state_key is not None:
            draft["state_key"] = state_key
        auth_events = [
            self.state[key]
            for key in auth_types_for_event(draft, self.version)
            if key in self.state
        ]
        fields.setdefault("prev_events", [self.events[-1]] if self.events else [])
        fields.setdefault("depth", len(self.events) + 1)
        fields.setdefault("origin_server_ts", next(self._ts))
        return make_event(
            type,
            sender,
            state_key,
            content,
            auth_events=auth_events,
            room_version=self.version,
            room_id=self.room_id,
            **fields,
        )

    def send(self, type, sender, state_key=None, content=None, **fields):
        """Build the next event and add it to the room (and its state)."""
        return self._add(self.new_event(type, sender, state_key, content, **fields))

    def member(self, user_id, membership, sender=None, **content):
        """Add an ``m.room.member`` event for ``user_id`` (sent by ``sender``, default themselves)."""
        content = dict(content, membership=membership)
        return self.send("m.room.member", sender or user_id, user_id, content)

    def join(self, user_id):
        """Add ``user_id``'s join."""
        return self.member(user_id, "join")
