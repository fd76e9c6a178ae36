"""The plain values that cross the storage interfaces: what services hand to
storage (:class:`EventToPersist`, :class:`RoomUpdate`, :class:`PersistBatch`) and
what storage hands back (:class:`StoredEvent`, :class:`UserRecord`, ...).

All records are frozen ``attrs`` classes without behaviour beyond small
conveniences, so that any storage implementation (SQL, in-memory) can build them.
A state key is always the pair ``(event_type, state_key)``; a "state map" is a
dict from such pairs to event IDs.
"""

from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

import attr

StateKey = Tuple[str, str]
StateMap = Dict[StateKey, str]


def _tuple_of_str(values) -> Tuple[str, ...]:
    return tuple(values)


def _prev_or_auth_ids(references) -> Tuple[str, ...]:
    """Event IDs from a PDU's ``prev_events``/``auth_events`` in either format.

    Room versions 1 and 2 list ``[event_id, {"sha256": ...}]`` pairs; later
    versions list plain event IDs (Server-Server API, "PDUs").
    """
    ids = []
    for reference in references or ():
        ids.append(reference[0] if isinstance(reference, (list, tuple)) else reference)
    return tuple(ids)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ClientTxn:
    """A client transaction ID that produced an event (Client-Server API,
    "Transaction identifiers": scoped to the sending device).

    :param device_id: ``None`` for an access token without a device.
    """

    user_id: str
    device_id: Optional[str]
    txn_id: str


@attr.s(frozen=True, slots=True, auto_attribs=True)
class EventToPersist:
    """One event plus everything the services decided about it.

    :param event_id: the event's ID (for room versions 3+ computed from the
        reference hash, since the PDU carries none).
    :param pdu: the event in its federation (PDU) form, signed, unredacted.
    :param room_id: the room; given explicitly because a v12 ``m.room.create``
        has no ``room_id`` field.
    :param state_key: ``None`` for non-state events.
    :param prev_event_ids: the IDs from ``prev_events``.
    :param auth_event_ids: the IDs from ``auth_events``.
    :param outlier: ``True`` if we hold the event without knowing the state
        before it (fetched auth events, out-of-band invites). Outliers get no
        stream ordering unless ``out_of_band_membership`` is set.
    :param rejected_reason: ``None`` if the event passed the authorization
        rules, else a short reason; rejected events are kept (they may be
        referenced) but never served to clients or used as state.
    :param soft_failed: the event passed auth against its own state but failed
        against the current state; kept in the DAG, hidden from clients.
    :param state_group: the state group of the state *after* this event
        (``None`` for outliers).
    :param redacts: for ``m.room.redaction`` events, the ID of the event they
        redact (top level before room v11, in ``content`` from v11); the
        service reads it, storage only indexes it.
    :param out_of_band_membership: for an outlier ``m.room.member`` event about
        a local user in a room we are not in (a remote invite, a rejected
        invite, a knock): give it a stream ordering and record it as that
        user's membership of the room, so that ``/sync`` can report it.
    :param membership: the ``content.membership`` of an ``m.room.member``
        event, else ``None``.
    :param txn: the client transaction that produced the event, if any.
    :param backfilled: the event is history fetched with backfill, older than the
        room's live events: it gets a negative stream ordering (from its own counter,
        further below zero the later it is stored), so it is paged through by
        ``/messages`` but never appears in a ``/sync`` as new.
    """

    event_id: str
    pdu: dict
    room_id: str
    type: str
    sender: str
    depth: int
    origin_server_ts: int
    state_key: Optional[str] = None
    prev_event_ids: Tuple[str, ...] = attr.ib(default=(), converter=_tuple_of_str)
    auth_event_ids: Tuple[str, ...] = attr.ib(default=(), converter=_tuple_of_str)
    outlier: bool = False
    rejected_reason: Optional[str] = None
    soft_failed: bool = False
    state_group: Optional[int] = None
    redacts: Optional[str] = None
    out_of_band_membership: bool = False
    membership: Optional[str] = None
    txn: Optional[ClientTxn] = None
    backfilled: bool = False

    @classmethod
    def from_pdu(cls, event_id: str, pdu: dict, room_id: Optional[str] = None, **decisions):
        """Build from a PDU, copying its structural fields.

        :param event_id: the event's ID.
        :param pdu: the PDU dict.
        :param room_id: overrides ``pdu["room_id"]`` (needed for a v12 create event).
        :param decisions: any of ``outlier``, ``rejected_reason``,
            ``soft_failed``, ``state_group``, ``redacts``,
            ``out_of_band_membership``, ``txn``, ``backfilled``.
        :returns: an :class:`EventToPersist` (not a Deferred).
        """
        membership = None
        if pdu.get("type") == "m.room.member":
            content = pdu.get("content")
            if isinstance(content, dict) and isinstance(content.get("membership"), str):
                membership = content["membership"]
        return cls(
            event_id=event_id,
            pdu=pdu,
            room_id=room_id if room_id is not None else pdu["room_id"],
            type=pdu["type"],
            state_key=pdu.get("state_key"),
            sender=pdu["sender"],
            depth=pdu.get("depth", 0),
            origin_server_ts=pdu.get("origin_server_ts", 0),
            prev_event_ids=_prev_or_auth_ids(pdu.get("prev_events")),
            auth_event_ids=_prev_or_auth_ids(pdu.get("auth_events")),
            membership=membership,
            **decisions,
        )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomUpdate:
    """The per-room outcome of persisting a batch.

    :param forward_extremities: the complete new set of forward extremities
        (events with no known successor) or ``None`` to leave them unchanged.
    :param state_delta_to_insert: current-state entries added or replaced,
        ``(type, state_key) -> event_id``.
    :param state_delta_to_delete: current-state keys removed.
    """

    room_id: str
    forward_extremities: Optional[FrozenSet[str]] = attr.ib(
        default=None, converter=attr.converters.optional(frozenset)
    )
    state_delta_to_insert: Mapping[StateKey, str] = attr.ib(factory=dict)
    state_delta_to_delete: FrozenSet[StateKey] = attr.ib(factory=frozenset, converter=frozenset)

    @property
    def changes_state(self) -> bool:
        """Whether this update changes the room's current state."""
        return bool(self.state_delta_to_insert or self.state_delta_to_delete)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PersistBatch:
    """Events and room updates written in one database transaction.

    :param events: in an order where every event comes after the events it
        references that are also in the batch; stream orderings are assigned
        in this order.
    :param room_updates: at most one per room.
    """

    events: Tuple[EventToPersist, ...] = attr.ib(converter=tuple)
    room_updates: Tuple[RoomUpdate, ...] = attr.ib(default=(), converter=tuple)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class StoredEvent:
    """An event as stored, with the decisions recorded when it was persisted.

    :param stream_ordering: position in the global room-event stream, or
        ``None`` for outliers.
    :param pdu: the PDU exactly as persisted (not redacted: applying
        redactions is the services' job, see ``get_redactions_of``).
    """

    event_id: str
    room_id: str
    type: str
    state_key: Optional[str]
    sender: str
    depth: int
    origin_server_ts: int
    stream_ordering: Optional[int]
    outlier: bool
    rejected_reason: Optional[str]
    soft_failed: bool
    state_group: Optional[int]
    redacts: Optional[str]
    membership: Optional[str]
    prev_event_ids: Tuple[str, ...]
    auth_event_ids: Tuple[str, ...]
    pdu: dict

    @property
    def is_state(self) -> bool:
        """Whether the event is a state event (has a ``state_key``)."""
        return self.state_key is not None

    @property
    def position(self) -> "RoomPosition":
        """The :class:`RoomPosition` just after this event (requires a stream ordering)."""
        return RoomPosition(self.depth, self.stream_ordering)

    @property
    def position_before(self) -> "RoomPosition":
        """The :class:`RoomPosition` just before this event (requires a stream ordering)."""
        return RoomPosition(self.depth, self.stream_ordering - 1)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomPosition:
    """A point in a room's timeline, between two events, for ``/messages``.

    Events are ordered by the key ``(depth, stream_ordering)`` ("topological"
    order). ``RoomPosition(t, s)`` lies just after the event with key ``(t, s)``:
    the events before it are those with key ``<= (t, s)``. With
    ``topological=None`` the position is a pure stream position (a ``/sync``
    token): the events before it are those with ``stream_ordering <= s``.
    """

    topological: Optional[int]
    stream: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomEventsChunk:
    """Recent events of one room for ``/sync``.

    :param events: oldest first.
    :param limited: ``True`` if older events in the requested range were left out.
    """

    events: List[StoredEvent]
    limited: bool


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomRecord:
    """A row of the rooms table."""

    room_id: str
    room_version: str
    creator: Optional[str]
    is_public: bool
    created_ts: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AliasRecord:
    """A local room alias: where it points and which servers can join through it."""

    alias: str
    room_id: str
    creator: Optional[str]
    servers: Tuple[str, ...]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomStats:
    """Denormalised facts about a room's current state, for the directory and ``/sync`` summaries."""

    room_id: str
    joined_members: int
    invited_members: int
    name: Optional[str]
    topic: Optional[str]
    avatar_url: Optional[str]
    canonical_alias: Optional[str]
    join_rule: Optional[str]
    history_visibility: Optional[str]
    guest_access: Optional[str]
    room_type: Optional[str]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PublicRoomsPage:
    """One page of the public room directory.

    :param next_offset: the ``since`` for the next page, ``None`` at the end.
    :param prev_offset: the ``since`` for the previous page, ``None`` at the start.
    :param total: how many public rooms match.
    """

    rooms: List[RoomStats]
    next_offset: Optional[int]
    prev_offset: Optional[int]
    total: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class UserMembership:
    """A user's membership of one room and the stream position where it took effect."""

    room_id: str
    membership: str
    event_id: str
    stream_ordering: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Member:
    """A member of a room: the membership and the ``m.room.member`` event that set it."""

    user_id: str
    membership: str
    event_id: str


@attr.s(frozen=True, slots=True, auto_attribs=True)
class UserRecord:
    """A local user account."""

    user_id: str
    password_hash: Optional[str]
    is_admin: bool
    is_guest: bool
    created_ts: int
    user_type: Optional[str]
    deactivated: bool


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DeviceRecord:
    """A device of a local user."""

    user_id: str
    device_id: str
    display_name: Optional[str]
    created_ts: int
    last_seen_ts: Optional[int]
    last_seen_ip: Optional[str]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TokenOwner:
    """Who an access token belongs to."""

    user_id: str
    device_id: Optional[str]
    is_guest: bool


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Profile:
    """A local user's profile fields."""

    displayname: Optional[str]
    avatar_url: Optional[str]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AccountDataChanges:
    """Account data written after a stream position.

    :param global_data: ``type -> content``.
    :param room_data: ``room_id -> {type -> content}``.
    """

    global_data: Dict[str, dict]
    room_data: Dict[str, Dict[str, dict]]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Receipt:
    """A receipt as stored: the latest per (room, type, user, thread).

    :param thread_id: ``None`` for an unthreaded receipt.
    """

    room_id: str
    receipt_type: str
    user_id: str
    thread_id: Optional[str]
    event_id: str
    data: dict
    stream_id: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ReceivedTransaction:
    """Our response to a federation transaction, kept to answer retries identically."""

    origin: str
    txn_id: str
    response_code: int
    response: dict
    received_ts: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DestinationRecord:
    """Retry and catch-up state for one remote server.

    :param retry_last_ts: when we last tried (ms), 0 if never failed.
    :param retry_interval: current back-off (ms), 0 when healthy.
    :param failure_ts: when the current run of failures began, ``None`` when healthy.
    :param last_successful_stream_ordering: the highest room-event stream
        ordering we know the destination received, ``None`` if unknown.
    """

    destination: str
    retry_last_ts: int
    retry_interval: int
    failure_ts: Optional[int]
    last_successful_stream_ordering: Optional[int]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ServerKey:
    """A remote server's verify key as we fetched it.

    :param key_json: the signed key response it came in (``/_matrix/key/v2/server``
        shape), to serve again as a notary.
    """

    server_name: str
    key_id: str
    verify_key_b64: str
    valid_until_ts: int
    from_server: str
    key_json: dict
