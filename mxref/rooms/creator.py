"""Creating this server's events in a room: build on the current forward extremities, check
the event against the room's current state, persist it.

Spec: Client-Server API, "Sending events to a room" and "Transaction identifiers"
(https://spec.matrix.org/v1.19/client-server-api/#transaction-identifiers: a retried request
with the same transaction ID from the same device gives the same event), "Redactions"
(a user may redact their own events, or others' with the ``redact`` power level);
Server-Server API "PDUs" (size limit 65,536 bytes) and the room version's authorization rules.
"""

from twisted.internet import defer
from twisted.logger import Logger

from mxref.errors import MatrixError
from mxref.events.authrules import (
    auth_types_for_event,
    check_auth,
    get_power_level_value,
    get_user_power_level,
)
from mxref.events.builder import MAX_PREV_EVENTS, build_create_event, build_event
from mxref.events.canonical import check_canonical_json, encode_canonical_json
from mxref.events.hashing import compute_event_id, compute_reference_hash, encode_unpadded_base64
from mxref.events.room_versions import EventFormat, get_room_version
from mxref.events.validation import MAX_PDU_BYTES, validate_pdu_format
from mxref.rooms.keyed_lock import KeyedLock
from mxref.rooms.state import StateAt, with_event_id
from mxref.storage.records import ClientTxn

CREATE_KEY = ("m.room.create", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")


class EventCreator:
    """Builds, authorises and persists events sent by local users.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param state_reader: a :class:`~mxref.rooms.state.RoomStateReader`.
    :param persister: an :class:`~mxref.rooms.persister.EventPersister`.
    :param server_name: our server name.
    :param signing_key: our event signing key.
    :param clock: an ``IReactorTime`` giving ``origin_server_ts``.
    :param module_hooks: a :class:`~mxref.modules.hooks.ModuleHooks` whose event checks see
        each event before it is built, or ``None``.
    """

    log = Logger()

    def __init__(self, events, rooms, state_reader, persister, server_name, signing_key, clock, module_hooks=None):
        self._events = events
        self._rooms = rooms
        self._state_reader = state_reader
        self._persister = persister
        self._server_name = server_name
        self._signing_key = signing_key
        self._clock = clock
        self._last_create_ts = 0
        self._module_hooks = module_hooks
        self._txn_locks = KeyedLock()

    def now_ms(self) -> int:
        """The current time in milliseconds since the epoch."""
        return int(self._clock.seconds() * 1000)

    @defer.inlineCallbacks
    def room_version_of(self, room_id):
        """The version of a room we know.

        :returns: Deferred firing with a :class:`~mxref.events.room_versions.RoomVersion`.
        :raises MatrixError: 404 ``M_NOT_FOUND`` for a room we do not know.
        """
        identifier = yield self._rooms.get_room_version(room_id)
        if identifier is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        return get_room_version(identifier)

    def send_event(
        self, room_id, sender, event_type, content, state_key=None, txn=None, redacts=None,
        before_new_event=None,
    ):
        """Create an event as local user ``sender`` in ``room_id`` and persist it.

        :param content: the event content (a dict supplied by a client).
        :param state_key: ``None`` for a message event.
        :param txn: ``(device_id, txn_id)`` of the client request, for idempotency, or ``None``.
        :param redacts: for ``m.room.redaction``, the redacted event's ID.
        :param before_new_event: called with no arguments once it is known that the request
            is not a retry of an earlier transaction (e.g. a rate limit check, which may raise
            to refuse the event), or ``None``.
        :returns: Deferred firing with ``(event_id, stream_ordering)``.
        :raises MatrixError: 400 ``M_BAD_JSON`` for content that is not canonical JSON in the
            room version, 413 ``M_TOO_LARGE`` for an event over 65,536 bytes, 403
            ``M_FORBIDDEN`` when the authorization rules refuse it, 404 for an unknown room.
        """
        if txn is None:
            return self._send_new_event(room_id, sender, event_type, content, state_key, None, redacts, before_new_event)
        # Requests with the same transaction ID run one after another (each sees whether an
        # earlier one persisted its event), outside the room's lock so that the look-up does
        # not hold up other senders in the room.
        return self._txn_locks.run(
            (sender, txn[0], txn[1]), self._send_event_once, room_id, sender, event_type, content, state_key,
            txn, redacts, before_new_event,
        )

    @defer.inlineCallbacks
    def _send_event_once(self, room_id, sender, event_type, content, state_key, txn, redacts, before_new_event):
        yield self.room_version_of(room_id)
        existing = yield self._events.get_event_by_txn_id(sender, txn[0], txn[1])
        if existing is not None:
            stored = yield self._events.get_event(existing, allow_rejected=True)
            return existing, stored.stream_ordering if stored is not None else None
        client_txn = ClientTxn(user_id=sender, device_id=txn[0], txn_id=txn[1])
        result = yield self._send_new_event(
            room_id, sender, event_type, content, state_key, client_txn, redacts, before_new_event
        )
        return result

    @defer.inlineCallbacks
    def _send_new_event(self, room_id, sender, event_type, content, state_key, client_txn, redacts, before_new_event):
        if before_new_event is not None:
            before_new_event()
        result = yield self._persister.serialised(
            room_id, self._send_event_locked, room_id, sender, event_type, content, state_key, client_txn, redacts
        )
        return result

    @defer.inlineCallbacks
    def _send_event_locked(self, room_id, sender, event_type, content, state_key, client_txn, redacts):
        version = yield self.room_version_of(room_id)
        if not isinstance(content, dict):
            raise MatrixError(400, "M_BAD_JSON", "Event content must be a JSON object")
        if self._module_hooks is not None:
            # Modules may refuse the event or replace its content (mxref.modules.hooks).
            content = yield self._module_hooks.check_local_event(room_id, sender, event_type, content, state_key, redacts)
        if version.strict_canonical_json:
            check_canonical_json(content)

        extremities = yield self._persister.forward_extremities(room_id)
        if not extremities:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        chosen = extremities[:MAX_PREV_EVENTS]
        state_before, auth_state = yield self._state_for_new_event(
            version, room_id, extremities, chosen, sender, event_type, content, state_key
        )
        if event_type == "m.room.redaction" and redacts is not None:
            yield self._check_may_redact(version, room_id, sender, redacts, auth_state)

        prev_events = yield self._prev_event_references(version, chosen)
        pdu = build_event(
            room_version=version,
            room_id=room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            state_key=state_key,
            prev_events=prev_events,
            current_state=auth_state,
            origin_server_ts=self.now_ms(),
            server_name=self._server_name,
            signing_key=self._signing_key,
            redacts=redacts,
        )
        event_id = yield self._check_and_persist(version, room_id, pdu, auth_state, state_before, client_txn)
        return event_id

    def send_remote_invite(self, room_id, sender, target, content, remote_rooms):
        """Invite a user of another server: build and authorise the invite here, have the
        invitee's server counter-sign it (``invite`` v2), then persist it.

        :param remote_rooms: the :class:`~mxref.rooms.interfaces.IRemoteRooms` to send it with.
        :returns: Deferred firing with the event ID.
        """
        return self._persister.serialised(
            room_id, self._send_remote_invite_locked, room_id, sender, target, content, remote_rooms
        )

    @defer.inlineCallbacks
    def _send_remote_invite_locked(self, room_id, sender, target, content, remote_rooms):
        version = yield self.room_version_of(room_id)
        extremities = yield self._persister.forward_extremities(room_id)
        chosen = extremities[:MAX_PREV_EVENTS]
        state_before, auth_state = yield self._state_for_new_event(
            version, room_id, extremities, chosen, sender, "m.room.member", content, target
        )
        prev_events = yield self._prev_event_references(version, chosen)
        pdu = build_event(
            room_version=version,
            room_id=room_id,
            sender=sender,
            event_type="m.room.member",
            content=content,
            state_key=target,
            prev_events=prev_events,
            current_state=auth_state,
            origin_server_ts=self.now_ms(),
            server_name=self._server_name,
            signing_key=self._signing_key,
        )
        event_id = compute_event_id(pdu, version)
        check_auth(dict(pdu, event_id=event_id), auth_state.values(), version)
        invite_state = yield self.stripped_state_events(room_id)
        signed = yield remote_rooms.invite_remote_user(version, room_id, pdu, event_id, invite_state)
        event_id, _ = yield self._check_and_persist(version, room_id, signed, auth_state, state_before)
        return event_id

    @defer.inlineCallbacks
    def stripped_state_events(self, room_id):
        """The state events an invitee or knocker is shown before joining: create, join rules,
        name, avatar, canonical alias, topic and encryption (Client-Server API, "Stripped
        state"), as full PDUs (spec v1.16 and later) with their ``event_id``.

        :returns: Deferred firing with a list of event dicts.
        """
        keys = [
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.name", ""),
            ("m.room.avatar", ""),
            ("m.room.canonical_alias", ""),
            ("m.room.topic", ""),
            ("m.room.encryption", ""),
        ]
        state = yield self._events.get_current_state(room_id, types=keys)
        return [with_event_id(state[key]) for key in keys if key in state]

    @defer.inlineCallbacks
    def _check_and_persist(self, version, room_id, pdu, auth_state, state_before, client_txn=None):
        if len(encode_canonical_json(pdu)) > MAX_PDU_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "Event is larger than 65536 bytes")
        validate_pdu_format(pdu, version)
        event_id = compute_event_id(pdu, version)
        check_auth(dict(pdu, event_id=event_id), auth_state.values(), version)
        stream_ordering, _state_after = yield self._persister.persist_event(
            version, room_id, event_id, pdu, state_before, txn=client_txn
        )
        self.log.debug("sent {event_id} in {room_id}", event_id=event_id, room_id=room_id)
        return event_id, stream_ordering

    @defer.inlineCallbacks
    def _state_for_new_event(self, version, room_id, extremities, chosen, sender, event_type, content, state_key):
        """The state before the new event (as a StateAt) and the events it is authorised
        against, ``(type, state_key) -> event dict`` (with ``event_id``)."""
        proto = {"type": event_type, "sender": sender, "content": content, "room_id": room_id}
        if state_key is not None:
            proto["state_key"] = state_key
        wanted = set(auth_types_for_event(proto, version)) | {CREATE_KEY, POWER_LEVELS_KEY}
        if len(chosen) == len(extremities):
            # Built on every extremity: the state before the event is the current state.
            if len(chosen) == 1:
                group = yield self._persister.state_group_after(room_id, chosen[0][0])
                state_before = StateAt(ids=None, group=group)
            else:
                ids = yield self._events.get_current_state_ids(room_id)
                state_before = StateAt(ids=ids, group=None)
            auth_ids = yield self._persister.current_state_ids(room_id, wanted)
        else:
            state_before = yield self._state_reader.state_after_events(version, room_id, [e for e, _ in chosen])
            ids = yield self._state_reader.ids_of(state_before)
            auth_ids = {k: v for k, v in ids.items() if k in wanted}
        stored = yield self._events.get_events(list(auth_ids.values()))
        auth_state = {key: with_event_id(stored[event_id]) for key, event_id in auth_ids.items() if event_id in stored}
        return state_before, auth_state

    @defer.inlineCallbacks
    def _prev_event_references(self, version, chosen):
        """``(event_id, depth)`` per prev event, plus the reference hash for room versions 1-2."""
        if version.event_format is not EventFormat.V1:
            return [(event_id, depth) for event_id, depth in chosen]
        stored = yield self._events.get_events([event_id for event_id, _ in chosen], allow_rejected=True)
        references = []
        for event_id, depth in chosen:
            reference_hash = compute_reference_hash(stored[event_id].pdu, version)
            references.append((event_id, depth, {"sha256": encode_unpadded_base64(reference_hash)}))
        return references

    @defer.inlineCallbacks
    def _check_may_redact(self, version, room_id, sender, redacts, auth_state):
        """Client-Server API, "Redactions": users may redact their own events; redacting
        another user's event needs the ``redact`` power level."""
        target = yield self._events.get_event(redacts)
        if target is None or target.room_id != room_id:
            raise MatrixError(404, "M_NOT_FOUND", "Event to redact not found")
        if target.sender == sender:
            return
        power_levels = auth_state.get(POWER_LEVELS_KEY)
        content = power_levels.get("content", {}) if power_levels else {}
        needed = get_power_level_value(content, "redact", 50, version)
        if get_user_power_level(sender, auth_state, version) < needed:
            raise MatrixError(403, "M_FORBIDDEN", "You don't have permission to redact this event")

    @defer.inlineCallbacks
    def create_room_event(self, room_version, creator, content, room_id=None, additional_creators=None):
        """Build and persist a new room's ``m.room.create`` event, and record the room.

        :param room_version: the new room's version.
        :param room_id: required before room version 12; derived from the event from 12 on.
        :returns: Deferred firing with ``(room_id, event_id)``.
        """
        version = get_room_version(room_version)
        # A v12 room ID is the hash of its create event: two identical createRoom requests in
        # the same millisecond would collide, so create events never share a timestamp here.
        self._last_create_ts = max(self.now_ms(), self._last_create_ts + 1)
        pdu, room_id = build_create_event(
            room_version=version,
            creator=creator,
            content=content,
            origin_server_ts=self._last_create_ts,
            server_name=self._server_name,
            signing_key=self._signing_key,
            room_id=room_id,
            additional_creators=additional_creators,
        )
        if version.strict_canonical_json:
            check_canonical_json(pdu)
        created = yield self._rooms.store_room(room_id, version.identifier, creator, False, self.now_ms())
        if not created:
            raise MatrixError(400, "M_ROOM_IN_USE", "Room ID already in use")
        self._persister.note_new_room(room_id)

        def persist():
            return self._check_and_persist(version, room_id, pdu, {}, StateAt(ids={}, group=None))

        event_id, _ = yield self._persister.serialised(room_id, persist)
        return room_id, event_id
