"""The receive pipeline for PDUs from other servers: every check the spec requires, in its
order, one room at a time, ending in the event being persisted (accepted, soft-failed or
rejected) or dropped.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):

* "Checks performed on receipt of a PDU": (1) a valid event for the room version, else
  drop; (2) valid signatures, else drop; (3) a matching content hash, else keep the redacted
  copy; (4) allowed by its own ``auth_events``, else reject; (5) allowed by the state before
  the event, else reject; (6) allowed by the current state of the room, else soft-fail.
* "Rejection" and "Soft failure": rejected events are stored but never become state,
  extremities or visible to clients; soft-failed ones take part in the DAG and state
  resolution but are neither shown nor built upon (:class:`~mxref.rooms.persister.EventPersister`
  applies both flags).
* "Retrieving events" / "Backfilling and retrieving missing events": a PDU whose
  ``prev_events`` we do not hold triggers ``POST /get_missing_events`` (bounded by a limit
  and a depth floor); a gap that remains is bridged with ``GET /state_ids`` at the event and
  ``GET /event`` for the state and auth events we lack, which are kept as outliers.
* "Server Access Control Lists": PDUs from a server the room's ACL denies are ignored.
* PDU format: from room version 3 the event ID is not sent but computed from the reference
  hash; ``unsigned`` is the sender's business and is not kept.

Everything for one room runs under :meth:`EventPersister.serialised`, so that the state
before each event and the room's extremities are computed without interference.
"""

import attr
from twisted.internet import defer
from twisted.logger import Logger

from mxref.errors import AuthError, InvalidEventFormat, MatrixError, SignatureError
from mxref.events.authrules import auth_types_for_event, check_auth, check_auth_events_list
from mxref.events.hashing import check_content_hash, compute_event_id
from mxref.events.redaction import redact, redacts_of
from mxref.events.room_versions import EventFormat, UnsupportedRoomVersion, get_room_version
from mxref.events.validation import validate_pdu_format
from mxref.rooms.persister import state_key_of
from mxref.rooms.state import StateAt, with_event_id
from mxref.storage.records import EventToPersist, PersistBatch

CREATE_KEY = ("m.room.create", "")

#: How many events one ``get_missing_events`` request asks for.
DEFAULT_MISSING_EVENTS_LIMIT = 10

ACCEPTED = "accepted"
SOFT_FAILED = "soft_failed"
REJECTED = "rejected"
DROPPED = "dropped"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PduOutcome:
    """What became of one received PDU.

    :param event_id: the event's ID, ``None`` when it could not be worked out.
    :param status: :data:`ACCEPTED`, :data:`SOFT_FAILED`, :data:`REJECTED` (stored, never
        state) or :data:`DROPPED` (not stored at all).
    :param reason: why it was rejected or dropped.
    """

    event_id: object
    status: str
    reason: object = None

    def transaction_result(self) -> dict:
        """The entry for this PDU in a ``/send`` response: ``{}`` when the event was taken in
        (accepted or soft-failed), else ``{"error": reason}``. Not a Deferred."""
        if self.status in (ACCEPTED, SOFT_FAILED):
            return {}
        return {"error": f"{self.status}: {self.reason}"}


class _Dropped(Exception):
    """Processing of a PDU stopped without storing it."""


def reference_ids(references):
    """Event IDs from a ``prev_events``/``auth_events`` list in either format (v1/v2 pairs
    or plain IDs). Not a Deferred."""
    ids = []
    for reference in references or ():
        ids.append(
            reference[0] if isinstance(reference, (list, tuple)) and reference else reference
        )
    return [i for i in ids if isinstance(i, str)]


def wire_pdu(event, room_version):
    """An event in federation form: without the ``event_id`` key from room version 3 (where
    the ID is computed from the reference hash), and without ``unsigned``. Not a Deferred."""
    version = get_room_version(room_version)
    pdu = {k: v for k, v in event.items() if k != "unsigned"}
    if version.event_format is not EventFormat.V1:
        pdu.pop("event_id", None)
    return pdu


def create_event_id_of(room_id, version):
    """Room version 12: the ID of the create event named by ``room_id``; ``None`` before."""
    if version.room_id_from_create_event and isinstance(room_id, str) and room_id.startswith("!"):
        return "$" + room_id[1:]
    return None


def room_id_of_pdu(pdu, version):
    """The room a PDU belongs to; a v12 create event's room ID derives from its own ID."""
    room_id = pdu.get("room_id")
    if room_id is None and pdu.get("type") == "m.room.create" and version.room_id_from_create_event:
        return "!" + compute_event_id(pdu, version)[1:]
    return room_id


def checked_pdu(raw, room_version):
    """Steps 1 and 3 for one PDU (format, event ID, content hash), without the signatures.

    :param raw: the PDU as received.
    :returns: ``(event_id, pdu)`` where ``pdu`` is the copy to keep: without ``unsigned`` (and
        without a stray ``event_id`` from room version 3), and redacted if its content hash
        does not match. Not a Deferred.
    :raises InvalidEventFormat: for a malformed PDU.
    """
    version = get_room_version(room_version)
    if not isinstance(raw, dict):
        raise InvalidEventFormat("a PDU must be a JSON object")
    pdu = {k: v for k, v in raw.items() if k != "unsigned"}
    if version.event_format is not EventFormat.V1:
        pdu.pop("event_id", None)
    validate_pdu_format(pdu, version)
    event_id = compute_event_id(pdu, version)
    if not check_content_hash(pdu):
        pdu = redact(pdu, version)
    return event_id, pdu


class PduReceiver:
    """Checks and persists PDUs received from other servers.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param state_reader: a :class:`~mxref.rooms.state.RoomStateReader`.
    :param persister: an :class:`~mxref.rooms.persister.EventPersister`.
    :param keyring: a :class:`~mxref.crypto.keyring.Keyring` (``verify_event(event,
        room_version)`` returning a Deferred that fails with :class:`SignatureError`).
    :param federation_client: a :class:`~mxref.federation.transport.client.FederationClient`
        (``get_missing_events``, ``get_state_ids``, ``get_event``, ``get_event_auth``).
    :param acl_checker: a :class:`~mxref.federation.acl.ServerAclChecker`.
    :param missing_events_limit: the ``limit`` of each ``get_missing_events`` request.
    :param module_hooks: a :class:`~mxref.modules.hooks.ModuleHooks` whose event checks see
        each event that passed the authorization rules (a refused one is soft-failed), or ``None``.
    """

    log = Logger()

    def __init__(
        self,
        events,
        rooms,
        state_reader,
        persister,
        keyring,
        federation_client,
        acl_checker,
        missing_events_limit=DEFAULT_MISSING_EVENTS_LIMIT,
        module_hooks=None,
    ):
        self._events = events
        self._rooms = rooms
        self._state_reader = state_reader
        self._persister = persister
        self._keyring = keyring
        self._client = federation_client
        self._acl = acl_checker
        self._missing_events_limit = missing_events_limit
        self._module_hooks = module_hooks

    # -- entry points -------------------------------------------------------------------------

    def receive_pdu(self, origin, pdu):
        """Run one PDU from ``origin`` through the pipeline, under its room's lock.

        :param origin: the (authenticated) server that sent it.
        :param pdu: the PDU dict as received.
        :returns: Deferred firing with a :class:`PduOutcome`; never fails for a bad PDU.
        """
        room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
        if not isinstance(room_id, str):
            return defer.succeed(PduOutcome(None, DROPPED, "the PDU names no room"))
        return self._persister.serialised(room_id, self._receive_locked, origin, room_id, pdu)

    def receive_pdu_locked(self, origin, room_id, pdu):
        """Like :meth:`receive_pdu` for a caller already holding ``room_id``'s lock.

        :returns: Deferred firing with a :class:`PduOutcome`.
        """
        return self._receive_locked(origin, room_id, pdu)

    @defer.inlineCallbacks
    def verify_pdu(self, raw, room_version):
        """Steps 1 to 3 for one PDU: format, signatures, content hash.

        :returns: Deferred firing with ``(event_id, pdu)`` (see :func:`checked_pdu`).
        :raises InvalidEventFormat: (through the Deferred) for a malformed PDU.
        :raises SignatureError: for a missing or bad signature.
        """
        version = get_room_version(room_version)
        if not isinstance(raw, dict):
            raise InvalidEventFormat("a PDU must be a JSON object")
        stripped = {k: v for k, v in raw.items() if k != "unsigned"}
        if version.event_format is not EventFormat.V1:
            stripped.pop("event_id", None)
        validate_pdu_format(stripped, version)
        yield self._keyring.verify_event(stripped, version)
        return checked_pdu(stripped, version)

    @defer.inlineCallbacks
    def store_outliers(self, room_version, room_id, raw_pdus):
        """Verify PDUs (format, signatures, hash) and keep them as outliers, each checked
        against its own auth events (rejected if it fails), in auth-chain order; for state and
        auth chains received while joining or bridging a gap.

        Events that fail format or signature checks, or belong to another room, are skipped.

        :returns: Deferred firing with ``{event_id: rejected_reason or None}`` for the events
            newly stored.
        """
        version = get_room_version(room_version)
        verified = {}
        for raw in raw_pdus:
            try:
                event_id, pdu = yield self.verify_pdu(raw, version)
            except (InvalidEventFormat, SignatureError) as e:
                self.log.info("skipped a fetched event: {error}", error=e)
                continue
            if room_id_of_pdu(pdu, version) != room_id:
                continue
            verified[event_id] = pdu
        have = yield self._events.have_events(list(verified))
        result = yield self._persist_outliers(
            version, room_id, {k: v for k, v in verified.items() if k not in have}
        )
        return result

    def receive_historical(self, origin, room_id, raw_pdus):
        """Check and store events older than those we hold (a ``/backfill`` answer), oldest
        first, under the room's lock; they join the timeline but never change the room's
        forward extremities or current state, and no client is woken for them.

        Spec: Server-Server API, "Backfilling and retrieving missing events": backfilled
        events go through the checks on receipt of a PDU, except soft failure, which only
        concerns new events.

        :param origin: the server that answered.
        :param raw_pdus: the PDUs as received.
        :returns: Deferred firing with ``[PduOutcome]`` for the events processed (events
            already held, malformed ones and other rooms' are left out).
        """
        return self._persister.serialised(room_id, self._receive_historical_locked, origin, room_id, raw_pdus)

    @defer.inlineCallbacks
    def _receive_historical_locked(self, origin, room_id, raw_pdus):
        version_id = yield self._rooms.get_room_version(room_id)
        if version_id is None:
            return []
        version = get_room_version(version_id)
        candidates = {}
        for raw in raw_pdus:
            try:
                event_id, pdu = yield self.verify_pdu(raw, version)
            except (InvalidEventFormat, SignatureError) as e:
                self.log.info("skipped a backfilled event from {origin}: {error}", origin=origin, error=e.msg)
                continue
            if room_id_of_pdu(pdu, version) == room_id:
                candidates[event_id] = pdu
        held = yield self._events.get_events(list(candidates), allow_rejected=True)
        outcomes = []
        ordered = sorted(candidates.items(), key=lambda item: (item[1].get("depth", 0), item[0]))
        for event_id, pdu in ordered:
            if event_id in held and not held[event_id].outlier:
                continue
            outcome = yield self._process_checked(
                origin, version, room_id, event_id, pdu, fetch_missing=False, historical=True
            )
            outcomes.append(outcome)
        return outcomes

    @defer.inlineCallbacks
    def _persist_historical(self, version, room_id, event_id, pdu, state_before, rejected_reason):
        """Store a backfilled event with the state group after it and no room update."""
        key = state_key_of(pdu)
        _state_after, group = yield self._state_reader.store_state_after(
            room_id, state_before, event_id, key if rejected_reason is None else None
        )
        record = EventToPersist.from_pdu(
            event_id,
            pdu,
            room_id=room_id,
            rejected_reason=rejected_reason,
            state_group=group,
            redacts=redacts_of(pdu, version),
            backfilled=True,
        )
        yield self._events.persist_events(PersistBatch(events=[record]))

    # -- the pipeline ---------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _receive_locked(self, origin, room_id, pdu, fetch_missing=True):
        version_id = yield self._rooms.get_room_version(room_id)
        if version_id is None:
            return PduOutcome(None, DROPPED, f"this server is not in room {room_id}")
        try:
            version = get_room_version(version_id)
        except UnsupportedRoomVersion:
            return PduOutcome(None, DROPPED, f"unsupported room version {version_id}")
        if not (yield self._acl.is_allowed(room_id, origin)):
            return PduOutcome(None, DROPPED, f"{origin} is denied by the room's server ACL")
        try:
            # A PDU we already hold (delivered again, or fetched earlier) is not checked twice:
            # its ID, the hash of its redacted form, is enough to find it.
            event_id, _ = checked_pdu(pdu, version)
            existing = yield self._events.get_event(event_id, allow_rejected=True)
            if existing is not None and existing.room_id != room_id:
                # Room versions 1 and 2 let the sender choose the event ID.
                return PduOutcome(
                    event_id, DROPPED, "the event ID is taken by another room's event"
                )
            if existing is not None and not existing.outlier:
                return _outcome_of_stored(existing)
            event_id, checked = yield self.verify_pdu(pdu, version)
        except (InvalidEventFormat, SignatureError) as e:
            self.log.info("dropped a PDU from {origin}: {error}", origin=origin, error=e.msg)
            return PduOutcome(None, DROPPED, e.msg)
        if room_id_of_pdu(checked, version) != room_id:
            return PduOutcome(event_id, DROPPED, "the PDU's room_id does not match")
        outcome = yield self._process_checked(
            origin, version, room_id, event_id, checked, fetch_missing
        )
        return outcome

    @defer.inlineCallbacks
    def _process_checked(self, origin, version, room_id, event_id, pdu, fetch_missing, historical=False):
        """Steps 4-6 and persisting, for a PDU whose format, signatures and hash are checked.

        A ``historical`` event (backfilled, older than what we hold) skips step 6, as the
        current state says nothing about whether an old event was allowed, and is stored
        without touching the room's forward extremities or current state.
        """
        existing = yield self._events.get_event(event_id, allow_rejected=True)
        if existing is not None and not existing.outlier:
            return _outcome_of_stored(existing)
        try:
            state_before = yield self._state_before(
                origin, version, room_id, event_id, pdu, fetch_missing
            )
        except _Dropped as e:
            return PduOutcome(event_id, DROPPED, str(e))
        yield self._fetch_missing_auth_events(origin, version, room_id, event_id, pdu)

        event = dict(pdu, event_id=event_id)
        rejected_reason = None
        soft_failed = False
        try:
            yield self._check_against_auth_events(version, room_id, event)
        except AuthError as e:
            rejected_reason = f"not allowed by its auth events: {e.msg}"
        if rejected_reason is None:
            state_ids = yield self._state_reader.ids_of(state_before)
            try:
                yield self._check_against_state(version, event, state_ids)
            except AuthError as e:
                rejected_reason = f"not allowed by the state before it: {e.msg}"
        if rejected_reason is None and not historical:
            current_ids = yield self._events.get_current_state_ids(
                room_id, types=_auth_state_keys(event, version)
            )
            try:
                yield self._check_against_state(version, event, current_ids)
            except AuthError as e:
                soft_failed = True
                self.log.info("soft-failed {event_id}: {error}", event_id=event_id, error=e.msg)
        if rejected_reason is None and not soft_failed and self._module_hooks is not None:
            # Modules cannot change the room's DAG that other servers share: an event they
            # refuse is kept but soft-failed (never shown to clients, never current state).
            if (yield self._module_hooks.refuses_remote_event(event, origin)):
                soft_failed = True

        if historical:
            yield self._persist_historical(version, room_id, event_id, pdu, state_before, rejected_reason)
        else:
            yield self._persister.persist_event(
                version,
                room_id,
                event_id,
                pdu,
                state_before,
                rejected_reason=rejected_reason,
                soft_failed=soft_failed,
            )
        if rejected_reason is not None:
            self.log.info(
                "rejected {event_id} from {origin}: {reason}",
                event_id=event_id,
                origin=origin,
                reason=rejected_reason,
            )
            return PduOutcome(event_id, REJECTED, rejected_reason)
        return PduOutcome(event_id, SOFT_FAILED if soft_failed else ACCEPTED)

    # -- auth checks ----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _check_against_auth_events(self, version, room_id, event):
        """Step 4: the event against the events its ``auth_events`` name.

        :raises AuthError: (through the Deferred) if refused or if an auth event is missing.
        """
        if event.get("type") == "m.room.create":
            check_auth(event, [], version)
            return
        auth_ids = reference_ids(event.get("auth_events"))
        create_id = create_event_id_of(room_id, version)
        wanted = auth_ids + ([create_id] if create_id else [])
        stored = yield self._events.get_events(wanted, allow_rejected=True)
        missing = [i for i in wanted if i not in stored]
        if missing:
            raise AuthError("auth_events", f"missing auth events {', '.join(sorted(missing))}")
        rejected = {i for i, e in stored.items() if e.rejected_reason}
        auth_dicts = [with_event_id(stored[i]) for i in auth_ids]
        check_auth_events_list(event, auth_dicts, version, is_rejected=lambda i: i in rejected)
        if create_id and create_id not in auth_ids:
            auth_dicts.append(with_event_id(stored[create_id]))
        check_auth(event, auth_dicts, version)

    @defer.inlineCallbacks
    def _check_against_state(self, version, event, state_ids):
        """Steps 5 and 6: the event against a state map (the state before it, or the current
        state), reading only the entries the auth events selection would pick.

        :raises AuthError: (through the Deferred) if refused.
        """
        if event.get("type") == "m.room.create":
            return
        ids = [state_ids[k] for k in _auth_state_keys(event, version) if k in state_ids]
        stored = yield self._events.get_events(ids, allow_rejected=True)
        check_auth(
            event, [with_event_id(e) for e in stored.values() if not e.rejected_reason], version
        )

    # -- the state before an event ----------------------------------------------------------------

    @defer.inlineCallbacks
    def _prevs_without_state(self, room_id, prev_ids):
        """The prev events we do not hold with a known state (unknown, or outliers).

        :raises _Dropped: if a prev event belongs to another room (its state must never leak
            into this one).
        """
        stored = yield self._events.get_events(prev_ids, allow_rejected=True)
        for prev_id, prev in stored.items():
            if prev.room_id != room_id:
                raise _Dropped(f"prev event {prev_id} belongs to another room")
        return [p for p in prev_ids if p not in stored or stored[p].outlier]

    @defer.inlineCallbacks
    def _state_before(self, origin, version, room_id, event_id, pdu, fetch_missing):
        """The state before the event: resolved from its prev events when we hold them all
        (after asking ``origin`` for the missing ones), else bridged with the state ``origin``
        reports at the event.

        :returns: Deferred firing with a :class:`StateAt`.
        :raises _Dropped: when a gap cannot be bridged.
        """
        prev_ids = reference_ids(pdu.get("prev_events"))
        if not prev_ids:
            return StateAt(ids={}, group=None)
        missing = yield self._prevs_without_state(room_id, prev_ids)
        if missing and fetch_missing:
            yield self._fetch_missing_prev_events(origin, version, room_id, event_id)
            missing = yield self._prevs_without_state(room_id, prev_ids)
        if not missing:
            state = yield self._state_reader.state_after_events(version, room_id, prev_ids)
            return state
        self.log.info(
            "gap before {event_id}: {count} prev events unknown; asking {origin} for the state",
            event_id=event_id,
            count=len(missing),
            origin=origin,
        )
        remote_state = yield self._fetch_state_at(origin, version, room_id, event_id)
        known = [p for p in prev_ids if p not in missing]
        maps = [remote_state]
        if known:
            maps.extend((yield self._state_reader.state_maps_after(known)))
        resolved = yield self._state_reader.resolve(version, maps)
        return StateAt(ids=resolved, group=None)

    @defer.inlineCallbacks
    def _fetch_missing_prev_events(self, origin, version, room_id, event_id):
        """Ask ``origin`` for the events between our forward extremities and ``event_id``
        (one request, at most ``missing_events_limit`` events, none below the depth of our
        shallowest extremity) and process them oldest first."""
        extremities = yield self._events.get_forward_extremities(room_id)
        earliest = [e for e, _depth in extremities]
        min_depth = min((depth for _e, depth in extremities), default=0)
        try:
            response = yield self._client.get_missing_events(
                origin, room_id, earliest, [event_id], self._missing_events_limit, min_depth
            )
        except MatrixError as e:
            self.log.info(
                "get_missing_events from {origin} failed: {error}", origin=origin, error=e
            )
            return
        fetched = response.get("events") if isinstance(response, dict) else None
        candidates = []
        for raw in fetched if isinstance(fetched, list) else ():
            try:
                fetched_id, pdu = yield self.verify_pdu(raw, version)
            except (InvalidEventFormat, SignatureError) as e:
                self.log.info(
                    "skipped a missing event from {origin}: {error}", origin=origin, error=e.msg
                )
                continue
            if fetched_id != event_id and room_id_of_pdu(pdu, version) == room_id:
                candidates.append((pdu.get("depth", 0), fetched_id, pdu))
        for _depth, fetched_id, pdu in sorted(candidates, key=lambda c: (c[0], c[1])):
            outcome = yield self._process_checked(
                origin, version, room_id, fetched_id, pdu, fetch_missing=False
            )
            self.log.debug(
                "missing event {event_id}: {status}", event_id=fetched_id, status=outcome.status
            )

    @defer.inlineCallbacks
    def _fetch_state_at(self, origin, version, room_id, event_id):
        """The state before ``event_id`` as ``origin`` reports it (``GET /state_ids``), after
        fetching the state and auth events we lack as outliers.

        :returns: Deferred firing with a state map.
        :raises _Dropped: if ``origin`` cannot tell us.
        """
        try:
            response = yield self._client.get_state_ids(origin, room_id, event_id)
        except MatrixError as e:
            raise _Dropped(
                f"could not fetch the state at the event from {origin}: {e.msg}"
            ) from None
        pdu_ids = response.get("pdu_ids") if isinstance(response, dict) else None
        chain_ids = response.get("auth_chain_ids") if isinstance(response, dict) else None
        if not isinstance(pdu_ids, list) or not isinstance(chain_ids, list):
            raise _Dropped(f"{origin} sent a malformed state_ids response")
        pdu_ids = [i for i in pdu_ids if isinstance(i, str)]
        wanted = set(pdu_ids) | {i for i in chain_ids if isinstance(i, str)}
        have = yield self._events.have_events(sorted(wanted))
        yield self._fetch_and_store_outliers(origin, version, room_id, sorted(wanted - set(have)))
        stored = yield self._events.get_events(pdu_ids, allow_rejected=True)
        state = {}
        for stored_id, stored_event in stored.items():
            if stored_event.room_id != room_id:
                continue
            if stored_event.state_key is not None and not stored_event.rejected_reason:
                state[(stored_event.type, stored_event.state_key)] = stored_id
        return state

    @defer.inlineCallbacks
    def _fetch_missing_auth_events(self, origin, version, room_id, event_id, pdu):
        """Fetch the event's auth events we lack (``GET /event_auth``, then ``GET /event`` for
        any still missing) and keep them as outliers."""
        wanted = reference_ids(pdu.get("auth_events"))
        create_id = create_event_id_of(room_id, version)
        if create_id and pdu.get("type") != "m.room.create":
            wanted.append(create_id)
        have = yield self._events.have_events(wanted)
        missing = [i for i in wanted if i not in have]
        if not missing:
            return
        try:
            response = yield self._client.get_event_auth(origin, room_id, event_id)
            chain = response.get("auth_chain") if isinstance(response, dict) else None
        except MatrixError as e:
            self.log.info("event_auth from {origin} failed: {error}", origin=origin, error=e)
            chain = None
        if isinstance(chain, list):
            yield self.store_outliers(version, room_id, chain)
        have = yield self._events.have_events(missing)
        still_missing = [i for i in missing if i not in have]
        if still_missing:
            yield self._fetch_and_store_outliers(origin, version, room_id, still_missing)

    @defer.inlineCallbacks
    def _fetch_and_store_outliers(self, origin, version, room_id, event_ids):
        """``GET /event`` each of ``event_ids`` from ``origin``; keep the valid ones as outliers."""
        raw_pdus = []
        for wanted_id in event_ids:
            try:
                response = yield self._client.get_event(origin, wanted_id)
            except MatrixError as e:
                self.log.info(
                    "could not fetch {event_id} from {origin}: {error}",
                    event_id=wanted_id,
                    origin=origin,
                    error=e,
                )
                continue
            pdus = response.get("pdus") if isinstance(response, dict) else None
            if isinstance(pdus, list) and pdus and isinstance(pdus[0], dict):
                raw_pdus.append((wanted_id, pdus[0]))
        verified = []
        for wanted_id, raw in raw_pdus:
            try:
                got_id, _pdu = checked_pdu(raw, version)
            except InvalidEventFormat:
                continue
            if got_id == wanted_id:
                verified.append(raw)
        yield self.store_outliers(version, room_id, verified)

    @defer.inlineCallbacks
    def _persist_outliers(self, version, room_id, pdus):
        """Persist checked PDUs as outliers in one batch, each authorised against its own auth
        events (earlier events of the batch included).

        :param pdus: ``{event_id: pdu}``.
        :returns: Deferred firing with ``{event_id: rejected_reason or None}``.
        """
        if not pdus:
            return {}
        ordered = _auth_order(pdus)
        referenced = set()
        for pdu in pdus.values():
            referenced.update(reference_ids(pdu.get("auth_events")))
        create_id = create_event_id_of(room_id, version)
        if create_id:
            referenced.add(create_id)
        stored = yield self._events.get_events(sorted(referenced - set(pdus)), allow_rejected=True)
        known = {i: with_event_id(e) for i, e in stored.items()}
        rejected = {i for i, e in stored.items() if e.rejected_reason}
        records = []
        results = {}
        for event_id in ordered:
            pdu = pdus[event_id]
            event = dict(pdu, event_id=event_id)
            reason = None
            try:
                _check_outlier_auth(version, room_id, event, known, rejected)
            except AuthError as e:
                reason = f"not allowed by its auth events: {e.msg}"
                rejected.add(event_id)
            known[event_id] = event
            results[event_id] = reason
            records.append(
                EventToPersist.from_pdu(
                    event_id,
                    pdu,
                    room_id=room_id,
                    outlier=True,
                    rejected_reason=reason,
                    redacts=redacts_of(pdu, version),
                )
            )
        yield self._events.persist_events(PersistBatch(events=records))
        return results


def _auth_state_keys(event, version):
    """The state keys an event is authorised against: its auth events selection plus the
    create event (which room version 12 never lists)."""
    return sorted(set(auth_types_for_event(event, version)) | {CREATE_KEY})


def _check_outlier_auth(version, room_id, event, known, rejected):
    """Step 4 for an outlier, with its auth events taken from ``known``."""
    if event.get("type") == "m.room.create":
        check_auth(event, [], version)
        return
    auth_ids = reference_ids(event.get("auth_events"))
    create_id = create_event_id_of(room_id, version)
    missing = [i for i in auth_ids + ([create_id] if create_id else []) if i not in known]
    if missing:
        raise AuthError("auth_events", f"missing auth events {', '.join(sorted(missing))}")
    auth_dicts = [known[i] for i in auth_ids]
    check_auth_events_list(event, auth_dicts, version, is_rejected=lambda i: i in rejected)
    if create_id and create_id not in auth_ids:
        auth_dicts.append(known[create_id])
    check_auth(event, auth_dicts, version)


def _auth_order(pdus):
    """The IDs of ``pdus`` ordered so each comes after the events of the set its
    ``auth_events`` (and ``prev_events``) name; ties by depth then ID."""
    remaining = dict(pdus)
    ordered = []
    placed = set()
    while remaining:
        ready = [
            i
            for i, pdu in remaining.items()
            if all(
                r in placed or r not in remaining
                for r in reference_ids(pdu.get("auth_events"))
                + reference_ids(pdu.get("prev_events"))
            )
        ]
        if not ready:  # a cycle, which valid events cannot form: fall back to depth order
            ready = list(remaining)
        ready.sort(key=lambda i: (remaining[i].get("depth", 0), i))
        for event_id in ready:
            ordered.append(event_id)
            placed.add(event_id)
            del remaining[event_id]
    return ordered


def _outcome_of_stored(stored):
    """The outcome recorded for an event already persisted (a duplicate delivery)."""
    if stored.rejected_reason:
        return PduOutcome(stored.event_id, REJECTED, stored.rejected_reason)
    if stored.soft_failed:
        return PduOutcome(stored.event_id, SOFT_FAILED)
    return PduOutcome(stored.event_id, ACCEPTED)
