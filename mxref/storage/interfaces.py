"""The storage contracts services code against: one small zope interface per area.

Every method returns a ``Deferred`` that fires with the documented result.
Storage never applies Matrix rules: authorization, state resolution, redaction
and visibility are decided by services, which hand their results to storage.
The SQL implementation lives in :mod:`mxref.storage.sql`; every implementation
must pass the conformance suites in ``tests/storage/``.

Streams. Positions are positive integers that only grow; ``0`` means "before
everything". There are three independent streams:

* the **room-event stream** (``stream_ordering``), global across rooms, given to
  every non-outlier event and every out-of-band membership when it is
  persisted; the changes to a room's current state and memberships caused by a
  persist are recorded at the highest stream ordering that persist gave to the
  room's events (or at a fresh position if it gave none, e.g. a state reset);
* the **account-data stream**, for global and per-room account data;
* the **receipts stream**.

A position handed out is only readable once its transaction has committed, and
positions become readable in order: when ``get_max_stream_ordering()`` returns
``N``, everything at ``<= N`` is visible. A ``/sync`` token is the tuple of the
three positions (the sync service formats it).

Spec references: Client-Server API "Syncing", "Pagination", "Transaction
identifiers", "Room aliases", "Listing rooms", "Client config", "Receipts",
"Filtering"; Server-Server API "Transactions", "Backfilling and retrieving
missing events", "Retrieving server keys", "Room State Resolution".
"""

from zope.interface import Interface


class IEventStore(Interface):
    """Room events: the DAG, each room's current state, and the room-event stream."""

    def persist_events(batch):
        """Write a :class:`~mxref.storage.records.PersistBatch` in one transaction.

        For each event: the PDU, its indexing fields, the outlier, rejected and
        soft-failed flags, the state group after it, its prev and auth edges,
        its client transaction ID and, for redactions, the redacted ID. For each
        :class:`~mxref.storage.records.RoomUpdate`: the new forward extremities
        and the current-state delta (which also updates room memberships and
        room stats).

        Events already stored are left alone, except that an event stored as an
        outlier and now persisted as a non-outlier is promoted: it gains a stream
        ordering, its state group and the new flags.

        :returns: Deferred firing with ``{event_id: stream_ordering}`` for every
            event in the batch that has a stream ordering (newly assigned or
            already held); stream orderings are assigned in batch order.
            Fails with ``ValueError`` (writing nothing) if an indexed field
            (event ID, room ID, type, state key, sender, redacts, membership)
            contains a NUL character; the PDU itself may contain any text.
        """

    def get_event(event_id, allow_rejected=False):
        """Fetch one event.

        :param allow_rejected: if false, a rejected event counts as missing.
        :returns: Deferred firing with a :class:`~mxref.storage.records.StoredEvent` or ``None``.
        """

    def get_events(event_ids, allow_rejected=False):
        """Fetch several events.

        :returns: Deferred firing with ``{event_id: StoredEvent}`` for those found.
        """

    def have_events(event_ids):
        """Which of these events are stored (outliers and rejected ones included).

        :returns: Deferred firing with a ``set`` of event IDs.
        """

    def get_forward_extremities(room_id):
        """The room's forward extremities, as last set by ``persist_events``.

        :returns: Deferred firing with a list of ``(event_id, depth)``, sorted by
            depth descending then event ID.
        """

    def get_current_state_ids(room_id, types=None, at_stream=None):
        """The room's current state as a state map.

        :param types: ``None`` for all state, else an iterable of
            ``(event_type, state_key)`` where ``state_key`` may be ``None`` to
            mean any state key of that type.
        :param at_stream: return the current state as it was at this room-event
            stream position (recorded deltas are undone) instead of now.
        :returns: Deferred firing with ``{(type, state_key): event_id}``.
        """

    def get_current_state(room_id, types=None):
        """Like ``get_current_state_ids`` but with the events.

        :returns: Deferred firing with ``{(type, state_key): StoredEvent}``.
        """

    def get_current_state_deltas(from_stream, to_stream):
        """Changes to current state recorded in ``(from_stream, to_stream]``.

        :returns: Deferred firing with a list of
            ``(stream_ordering, room_id, type, state_key, event_id_or_None)``
            in stream order (``None`` means the key was removed).
        """

    def get_state_ids_at_event(event_id):
        """The state *after* an event, from its state group.

        :returns: Deferred firing with a state map, or ``None`` if the event is
            unknown or an outlier.
        """

    def get_room_events_stream(room_id, from_position, to_position, limit, direction):
        """Page through a room's timeline in topological order, for ``/messages``.

        Only events visible to clients are returned (not outliers, not rejected,
        not soft-failed).

        :param from_position: a :class:`~mxref.storage.records.RoomPosition`.
        :param to_position: a ``RoomPosition`` where to stop, or ``None``.
        :param limit: the most events to return.
        :param direction: ``"b"`` for events before ``from_position``, newest
            first; ``"f"`` for events after it, oldest first. Positions lie
            between events, so the result is exactly the events between
            ``from_position`` and ``to_position``.
        :returns: Deferred firing with a list of ``StoredEvent``. The next
            ``from`` is ``events[-1].position_before`` going backwards and
            ``events[-1].position`` going forwards.
        """

    def get_events_since(from_stream, room_ids, limit, to_stream=None):
        """The newest client-visible events of each room in ``(from_stream, to_stream]``, for ``/sync``.

        :param from_stream: exclusive lower bound; ``None`` or ``0`` for all.
        :param room_ids: the rooms to look at.
        :param limit: the most events per room.
        :param to_stream: inclusive upper bound, ``None`` for now.
        :returns: Deferred firing with ``{room_id: RoomEventsChunk}`` for rooms
            with at least one such event.
        """

    def get_max_stream_ordering():
        """The highest committed room-event stream ordering (``0`` if none).

        :returns: Deferred firing with an int.
        """

    def get_auth_chain_ids(event_ids):
        """All events reachable from these events through ``auth_events``.

        :returns: Deferred firing with a ``set`` of event IDs; the given events
            are included only if they are in one another's chain.
        """

    def get_redactions_of(event_id):
        """Redaction events targeting an event, whether or not they are allowed.

        Rejected and soft-failed redactions are excluded; whether a redaction
        applies is for the service to decide.

        :returns: Deferred firing with a list of event IDs.
        """

    def get_redactions_of_events(event_ids):
        """:meth:`get_redactions_of` for many events in one read.

        :returns: Deferred firing with ``{event_id: [redaction event IDs]}`` holding only
            the events that have some.
        """

    def get_event_by_txn_id(user_id, device_id, txn_id):
        """The event a client transaction produced, for idempotent sends.

        :param device_id: ``None`` for a device-less access token.
        :returns: Deferred firing with an event ID or ``None``.
        """

    def get_txn_ids(user_id, device_id, event_ids):
        """The client transaction IDs with which one device sent some events, so that the
        device can recognise its own echoes (``unsigned.transaction_id``).

        :param device_id: ``None`` for a device-less access token.
        :returns: Deferred firing with ``{event_id: txn_id}`` for those of ``event_ids`` that
            this user and device sent with a transaction ID.
        """

    def get_prev_event_ids(event_id):
        """The ``prev_events`` of a stored event.

        :returns: Deferred firing with a list of event IDs (empty if unknown).
        """

    def get_backfill_ids(room_id, from_ids, limit):
        """Events for federation ``/backfill``: the given events and their
        predecessors, walking ``prev_events`` from the highest depth down.

        :returns: Deferred firing with at most ``limit`` event IDs we hold,
            highest depth first; rejected events are skipped.
        """

    def get_missing_events(room_id, earliest_ids, latest_ids, limit, min_depth=0):
        """Events for federation ``/get_missing_events``: predecessors of
        ``latest_ids`` (which are excluded), walking ``prev_events`` breadth
        first and stopping at ``earliest_ids`` (excluded, not walked through)
        and at events with depth below ``min_depth``. Rejected events are
        walked through but not returned.

        :returns: Deferred firing with at most ``limit`` event IDs, oldest
            (lowest depth) first.
        """

    def get_replacements(event_ids):
        """Candidate edits (``m.replace`` relations) of some events, most recent first.

        Client-Server API "Event replacements" > "Validity of replacement events" and
        "Server-side aggregation of m.replace relationships". Only accepted, non-outlier,
        non-soft-failed replacements are given, and only those with the original's room,
        sender and type where neither event is a state event. Checks that need the events'
        content or redactions (``m.new_content``, an original that is itself an edit, a
        redacted replacement) are left to the caller.

        :param event_ids: IDs of original events (unknown IDs are ignored).
        :returns: Deferred firing with ``{original_id: [StoredEvent, ...]}``, each list
            ordered most recent first: highest ``origin_server_ts``, then lexicographically
            largest event ID. Originals without replacements are absent.
        """

    def get_relations(room_id, parent_id, rel_type, event_type, from_position, to_position,
                      limit, direction):
        """A page of the events that relate to one event (``GET /relations``), read like
        :meth:`get_room_events_stream`: accepted timeline events of ``room_id`` whose
        ``m.relates_to`` names ``parent_id``, in topological order.

        :param rel_type: only this relation type, or ``None`` for all.
        :param event_type: only this event type, or ``None`` for all (with ``rel_type``).
        :param from_position: a :class:`~mxref.storage.records.RoomPosition` to start at
            (exclusive going forwards, inclusive going backwards, as for the stream).
        :param to_position: where to stop, or ``None``.
        :param direction: ``"b"`` (newest first) or ``"f"``.
        :returns: Deferred firing with a list of StoredEvent.
        """


class IStateStore(Interface):
    """State groups: immutable, numbered snapshots of room state stored as deltas.

    A group is either a full snapshot or a delta against a previous group;
    implementations bound the delta chain (storing a snapshot every N deltas)
    so that reading a group costs a bounded amount of work.
    """

    def store_state_group(room_id, prev_group, delta_ids, full_ids=None):
        """Store a new state group.

        :param prev_group: the group this one is a delta of, or ``None``.
        :param delta_ids: with ``prev_group``: the entries that differ from it,
            ``(type, state_key) -> event_id``, with ``None`` for a removed key;
            without ``prev_group``: the full state.
        :param full_ids: optionally the full resulting state, if the caller
            has it (saves a read when a snapshot is due).
        :returns: Deferred firing with the new group's ID (an int).
        """

    def get_state_group_ids(group, types=None):
        """The full state of a group.

        :param types: as for ``IEventStore.get_current_state_ids``.
        :returns: Deferred firing with a state map (empty for an unknown group).
        """

    def get_state_group_for_event(event_id):
        """The state group after an event.

        :returns: Deferred firing with an int, or ``None`` for unknown events
            and outliers.
        """

    def get_state_groups_for_events(event_ids):
        """The state groups after several events.

        :returns: Deferred firing with ``{event_id: group}`` for events that have one.
        """


class IRoomStore(Interface):
    """Rooms, aliases, the public directory and memberships.

    Memberships are maintained by ``IEventStore.persist_events`` from the
    current-state deltas (and out-of-band membership events); each change is
    recorded at a room-event stream position.
    """

    def store_room(room_id, room_version, creator, is_public, created_ts):
        """Record a room we created or joined.

        :returns: Deferred firing with ``True`` if stored, ``False`` if the room
            was already known (then nothing changes).
        """

    def get_room(room_id):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.RoomRecord` or ``None``."""

    def get_room_version(room_id):
        """:returns: Deferred firing with the room version string or ``None``."""

    def set_room_is_public(room_id, is_public):
        """Publish a room in, or remove it from, the public directory.

        :returns: Deferred firing with ``None``.
        """

    def create_alias(alias, room_id, creator, servers):
        """Create a local alias.

        :param servers: server names to suggest for joining through this alias.
        :returns: Deferred firing with ``True`` if created, ``False`` if the
            alias already exists (then nothing changes).
        """

    def get_alias(alias):
        """:returns: Deferred firing with an :class:`~mxref.storage.records.AliasRecord` or ``None``."""

    def delete_alias(alias):
        """Delete a local alias.

        :returns: Deferred firing with the room ID it pointed to, or ``None``.
        """

    def get_aliases_for_room(room_id):
        """:returns: Deferred firing with a sorted list of the room's local aliases."""

    def get_room_stats(room_id):
        """Member counts and name/topic/... from current state.

        :returns: Deferred firing with a :class:`~mxref.storage.records.RoomStats` or ``None``.
        """

    def get_public_rooms(limit=None, since=None, search=None):
        """A page of public rooms, most joined members first, then by room ID.

        :param limit: the most rooms, ``None`` for all.
        :param since: the offset to start at (from ``next_offset``/``prev_offset``).
        :param search: case-insensitive substring matched against name, topic
            and canonical alias.
        :returns: Deferred firing with a :class:`~mxref.storage.records.PublicRoomsPage`.
        """

    def get_rooms_for_user(user_id, memberships=("join",)):
        """The user's current membership of each room.

        :param memberships: which memberships to include, ``None`` for all.
        :returns: Deferred firing with a list of
            :class:`~mxref.storage.records.UserMembership`, sorted by room ID.
        """

    def get_members(room_id, membership=None, at_stream=None):
        """The room's members from current state.

        :param membership: only this membership (e.g. ``"join"``), ``None`` for all.
        :param at_stream: the members as current state had them at this
            room-event stream position.
        :returns: Deferred firing with ``{user_id: Member}``.
        """

    def get_joined_hosts(room_id):
        """Server names of the room's joined members.

        :returns: Deferred firing with a ``set`` of server names.
        """

    def get_membership_changes(user_id, from_stream, to_stream=None):
        """Rooms where the user's membership changed in ``(from_stream, to_stream]``.

        :returns: Deferred firing with a list of ``UserMembership`` (the latest
            membership per room), in stream order.
        """

    def forget_room(user_id, room_id):
        """Record that the user forgot the room (Client-Server API, ``POST
        /rooms/{roomId}/forget``). The room stays forgotten until the user's
        membership of it changes again.

        :returns: Deferred firing with ``True``, or ``False`` if the user has no
            membership of the room at all (then nothing is recorded).
        """

    def get_forgotten_room_ids(user_id):
        """The rooms the user forgot and whose membership has not changed since.

        :returns: Deferred firing with a ``set`` of room IDs.
        """


class IAccountStore(Interface):
    """Local users, their devices, access tokens and profiles."""

    def create_user(user_id, password_hash, is_admin=False, created_ts=0, user_type=None, is_guest=False):
        """Create a user account.

        :param password_hash: ``None`` for an account that cannot log in with a password.
        :returns: Deferred firing with ``True``, or ``False`` if the user exists.
        """

    def get_user(user_id):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.UserRecord` or ``None``."""

    def set_password_hash(user_id, password_hash):
        """:returns: Deferred firing with ``True`` if the user exists."""

    def deactivate(user_id):
        """Mark deactivated, clear the password hash, delete all devices and access tokens.

        :returns: Deferred firing with ``True`` if the user exists.
        """

    def create_device(user_id, device_id, display_name=None, created_ts=0):
        """Create a device if it does not exist.

        :returns: Deferred firing with ``True`` if created, ``False`` if it existed.
        """

    def get_device(user_id, device_id):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.DeviceRecord` or ``None``."""

    def get_devices(user_id):
        """:returns: Deferred firing with ``{device_id: DeviceRecord}``."""

    def set_device_display_name(user_id, device_id, display_name):
        """:returns: Deferred firing with ``True`` if the device exists."""

    def record_device_seen(user_id, device_id, ts, ip):
        """Remember when and from where a device was last used.

        :returns: Deferred firing with ``None``.
        """

    def delete_device(user_id, device_id):
        """Delete a device and its access tokens.

        :returns: Deferred firing with ``True`` if the device existed.
        """

    def add_access_token(user_id, device_id, token, created_ts):
        """Store a new access token.

        :param device_id: ``None`` for a device-less token.
        :returns: Deferred firing with ``None``.
        """

    def get_user_by_access_token(token):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.TokenOwner` or ``None``."""

    def delete_access_token(token):
        """:returns: Deferred firing with ``True`` if the token existed."""

    def delete_access_tokens_for_device(user_id, device_id, except_token=None):
        """Delete the access tokens of one device (a new login to an existing device ID
        replaces them), keeping the device itself.

        :returns: Deferred firing with the number deleted.
        """

    def delete_all_access_tokens(user_id, except_token=None):
        """Delete all of a user's access tokens (``/logout/all``).

        :returns: Deferred firing with the number deleted.
        """

    def get_profile(user_id):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.Profile`,
        or ``None`` if no profile field was ever set."""

    def set_displayname(user_id, displayname):
        """:param displayname: ``None`` to clear. :returns: Deferred firing with ``None``."""

    def set_avatar_url(user_id, avatar_url):
        """:param avatar_url: ``None`` to clear. :returns: Deferred firing with ``None``."""


class IClientDataStore(Interface):
    """Per-user client data: account data, filters and receipts."""

    def put_account_data(user_id, room_id, data_type, content):
        """Set (replace) one account data entry.

        :param room_id: ``None`` for global account data.
        :returns: Deferred firing with its new account-data stream position.
        """

    def get_account_data(user_id, room_id, data_type):
        """:returns: Deferred firing with the content dict or ``None``."""

    def get_account_data_since(user_id, from_stream):
        """Account data written after ``from_stream`` (``0`` for all).

        :returns: Deferred firing with :class:`~mxref.storage.records.AccountDataChanges`.
        """

    def get_account_data_position():
        """:returns: Deferred firing with the highest account-data stream position (``0`` if none)."""

    def add_filter(user_id, filter_json):
        """Store a filter definition.

        :returns: Deferred firing with the new filter ID (a string of digits).
        """

    def get_filter(user_id, filter_id):
        """:returns: Deferred firing with the filter dict, or ``None`` if the
        user has no such filter (any string is accepted)."""

    def put_receipt(room_id, receipt_type, user_id, event_id, data, thread_id=None):
        """Replace the user's receipt of this type (and thread) in the room.

        :param data: the receipt's data, e.g. ``{"ts": ...}``.
        :returns: Deferred firing with its new receipts stream position.
        """

    def get_receipts_since(room_ids, from_stream, to_stream=None):
        """Receipts in these rooms written in ``(from_stream, to_stream]``.

        :returns: Deferred firing with a list of :class:`~mxref.storage.records.Receipt` in stream order.
        """

    def get_receipts_position():
        """:returns: Deferred firing with the highest receipts stream position (``0`` if none)."""


class IFederationStore(Interface):
    """Federation bookkeeping: inbound transaction dedup, destination retry state, server keys."""

    def get_received_txn(origin, txn_id):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.ReceivedTransaction` or ``None``."""

    def set_received_txn(origin, txn_id, response_code, response, received_ts):
        """Remember our response to a transaction (replacing any earlier one).

        :returns: Deferred firing with ``None``.
        """

    def get_destination(destination):
        """:returns: Deferred firing with a :class:`~mxref.storage.records.DestinationRecord` or ``None``."""

    def set_destination_retry(destination, retry_last_ts, retry_interval, failure_ts):
        """Record back-off state; ``(0, 0, None)`` marks the destination healthy.

        :returns: Deferred firing with ``None``.
        """

    def set_destination_last_successful_stream_ordering(destination, stream_ordering):
        """Record the room-event stream position the destination has caught up to.

        :returns: Deferred firing with ``None``.
        """

    def get_destinations_behind(stream_ordering):
        """Destinations whose last successful stream ordering is below ``stream_ordering``
        (destinations never successfully sent to, with ``None``, are not included).

        :returns: Deferred firing with a sorted list of :class:`~mxref.storage.records.DestinationRecord`.
        """

    def store_server_keys(server_name, key_id, verify_key_b64, valid_until_ts, from_server, key_json):
        """Cache a remote server's verify key (replacing one from the same ``from_server``).

        :param from_server: the server that gave us the key (itself or a notary).
        :param key_json: the signed key response the key came in.
        :returns: Deferred firing with ``None``.
        """

    def get_server_keys(server_name, key_ids):
        """Cached keys of a server.

        :param key_ids: the key IDs wanted, ``None`` for all.
        :returns: Deferred firing with ``{key_id: ServerKey}``; where several
            servers vouched for a key, the one valid the longest.
        """
