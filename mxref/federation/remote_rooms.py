"""Room operations that need another server: resolving a remote alias, joining a room we are
not in, having an invitee's server counter-sign an invite, and leaving (rejecting an
invite to) a room we are not in. The federation implementation of
:class:`~mxref.rooms.interfaces.IRemoteRooms`.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):

* "Querying for information": ``GET /query/directory?room_alias=`` gives ``room_id`` and
  ``servers``.
* "Joining Rooms": ``GET /make_join/{roomId}/{userId}?ver=...`` (every room version we
  support) returns a template; the joining server checks it (``m.room.member``, ``join``,
  ``sender`` = ``state_key`` = the user, the right room), fills in ``origin_server_ts`` (and
  an ``event_id`` for room versions 1 and 2), hashes and signs it, and calls ``PUT
  /v2/send_join`` on the **same** server. The answer holds the room's state before the join
  and its auth chain; every event in them must pass the checks on received PDUs (format,
  signatures, content hash, authorised by its auth events), and the join must be allowed by
  that state. A restricted-room join comes back as ``event``, counter-signed by the resident.
  ``M_UNABLE_TO_GRANT_JOIN``, ``M_INCOMPATIBLE_ROOM_VERSION`` and unreachable servers send us
  on to the next candidate.
* "Inviting to a room": ``PUT /v2/invite/{roomId}/{eventId}`` with ``room_version``,
  ``event`` and ``invite_room_state`` (full PDUs including ``m.room.create``, v1.16); the
  answer is the same event with the invitee's server's signature added.
* "Leaving Rooms (Rejecting Invites)": ``GET /make_leave`` then ``PUT /v2/send_leave``; we
  keep the leave as an out-of-band membership so that the user's ``/sync`` sees the room go.
* "Knocking upon a room": ``GET /make_knock?ver=`` then ``PUT /v1/send_knock``, whose answer
  ``knock_room_state`` we keep (stripped) with the knock for the user's ``/sync``.
"""

import secrets

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mxref.client.serialise import strip_state_event
from mxref.errors import AuthError, InvalidEventFormat, MatrixError, SignatureError
from mxref.events.authrules import auth_types_for_event, check_auth
from mxref.events.hashing import compute_event_id, encode_unpadded_base64
from mxref.events.redaction import redact
from mxref.events.room_versions import ROOM_VERSIONS, EventFormat, UnsupportedRoomVersion, get_room_version
from mxref.events.signing import sign_event
from mxref.federation.receiver.pipeline import checked_pdu
from mxref.federation.sender.routing import pdu_for_wire, server_of
from mxref.federation.transport.client import RequestFailed
from mxref.rooms.interfaces import IRemoteRooms
from mxref.rooms.persister import ROOM_EVENTS_STREAM
from mxref.rooms.state import StateAt, with_event_id
from mxref.storage.records import EventToPersist, PersistBatch, RoomUpdate
from mxref.types import RoomAlias

CREATE_KEY = ("m.room.create", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")

#: The room versions we offer in ``make_join`` (``ver``), newest first.
SUPPORTED_ROOM_VERSIONS = tuple(sorted(ROOM_VERSIONS, key=int, reverse=True))

#: Template fields the joining (leaving) server replaces or must not keep.
_TEMPLATE_FIELDS_DROPPED = ("origin", "hashes", "signatures", "unsigned", "event_id")


class _TryNextServer(MatrixError):
    """This candidate server could not get us in; another one may.

    :ivar unreachable: the server could not be reached at all (no answer).
    """

    def __init__(self, code, errcode, msg, unreachable=False):
        super().__init__(code, errcode, msg)
        self.unreachable = unreachable


def fill_membership_template(template, room_version, user_id, room_id, membership, content, server_name,
                             signing_key, now_ms, random_bytes=secrets.token_bytes):
    """Check a ``make_join``/``make_leave`` template and turn it into our signed event.

    :param template: the ``event`` of the ``make_*`` response.
    :param content: our membership content (``displayname``, ``reason``...); the template's
        own content keys (e.g. ``join_authorised_via_users_server``) are kept.
    :param now_ms: our ``origin_server_ts``.
    :param random_bytes: ``n -> n random bytes`` for room version 1/2 event IDs.
    :returns: ``(event_id, signed pdu)``. Not a Deferred.
    :raises MatrixError: 502 ``M_BAD_JSON`` for a template that is not the membership event asked for.
    """
    version = get_room_version(room_version)
    if not isinstance(template, dict) or not isinstance(template.get("content"), dict):
        raise _TryNextServer(502, "M_BAD_JSON", "make_membership template is not an event")
    expected = {"type": "m.room.member", "room_id": room_id, "sender": user_id, "state_key": user_id}
    for key, value in expected.items():
        if template.get(key) != value:
            raise _TryNextServer(502, "M_BAD_JSON", f"make_{membership} template has the wrong {key}")
    if template["content"].get("membership") != membership:
        raise _TryNextServer(502, "M_BAD_JSON", f"make_{membership} template is not a {membership}")
    event = {k: v for k, v in template.items() if k not in _TEMPLATE_FIELDS_DROPPED}
    event_content = dict(template["content"])
    event_content.update(content)
    event_content["membership"] = membership
    event["content"] = event_content
    event["origin_server_ts"] = now_ms
    if version.event_format is EventFormat.V1:
        event["event_id"] = "$" + encode_unpadded_base64(random_bytes(18), urlsafe=True) + ":" + server_name
    pdu = sign_event(event, server_name, signing_key, version)
    return compute_event_id(pdu, version), pdu


@implementer(IRemoteRooms)
class RemoteRooms:
    """Joins, invites and leaves across servers.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param persister: the :class:`~mxref.rooms.persister.EventPersister`.
    :param pdu_receiver: a :class:`~mxref.federation.receiver.pipeline.PduReceiver`
        (``verify_pdu`` and ``store_outliers``: the checks on received PDUs).
    :param client: a :class:`~mxref.federation.transport.client.FederationClient`.
    :param keyring: a :class:`~mxref.crypto.keyring.Keyring` (``verify_json_for_server``,
        for the invitee's counter-signature).
    :param notifier: the :class:`~mxref.notifier.Notifier` (out-of-band leaves).
    :param server_name: our server name.
    :param signing_key: our signing key.
    :param clock: an ``IReactorTime``.
    """

    log = Logger()

    def __init__(self, events, rooms, persister, pdu_receiver, client, keyring, notifier, server_name, signing_key,
                 clock):
        self._events = events
        self._rooms = rooms
        self._persister = persister
        self._pdus = pdu_receiver
        self._client = client
        self._keyring = keyring
        self._notifier = notifier
        self._server_name = server_name
        self._signing_key = signing_key
        self._clock = clock

    def _now_ms(self):
        return int(self._clock.seconds() * 1000)

    # -- aliases ------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def resolve_alias(self, alias):
        """See :meth:`IRemoteRooms.resolve_alias`."""
        server = RoomAlias.parse(alias).server_name
        try:
            response = yield self._client.query_directory(server, alias)
        except MatrixError as e:
            self.log.info("alias {alias} not resolved by {server}: {error}", alias=alias, server=server, error=e)
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found") from None
        room_id = response.get("room_id") if isinstance(response, dict) else None
        servers = response.get("servers") if isinstance(response, dict) else None
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        return room_id, [s for s in servers if isinstance(s, str)]

    # -- joining ------------------------------------------------------------------------------

    def join_remote_room(self, room_id, user_id, servers, content):
        """See :meth:`IRemoteRooms.join_remote_room`. Candidates are tried in order; the
        error of the last one is raised when none lets us in."""
        return self._through_candidates("join", servers, room_id, self._join_via, room_id, user_id, content)

    @defer.inlineCallbacks
    def _through_candidates(self, action, servers, room_id, attempt, *args):
        """Call ``attempt(server, *args)`` for each candidate server but ourselves until one
        succeeds; a :class:`_TryNextServer` moves on to the next.

        :returns: Deferred firing with the first success's result.
        :raises MatrixError: the last candidate's error (404 when there was none).
        """
        last_error = MatrixError(404, "M_NOT_FOUND", f"No server could be reached to {action} {room_id}")
        for server in servers:
            if server == self._server_name:
                continue
            try:
                result = yield attempt(server, *args)
            except _TryNextServer as e:
                self.log.info("could not {action} {room_id} via {server}: {error}", action=action, room_id=room_id,
                              server=server, error=e)
                if e.unreachable:
                    # Nobody answered: for the client the room is not found (a bad gateway
                    # is kept for servers that answered wrongly).
                    last_error = MatrixError(404, "M_NOT_FOUND", f"Could not reach a server in the room: {e.msg}")
                else:
                    last_error = MatrixError(e.code if e.code < 500 else 502, e.errcode, e.msg)
                continue
            return result
        raise last_error

    @defer.inlineCallbacks
    def _join_via(self, server, room_id, user_id, content):
        try:
            made = yield self._client.make_join(server, room_id, user_id, SUPPORTED_ROOM_VERSIONS)
        except MatrixError as e:
            raise _TryNextServer(
                e.code, e.errcode, f"make_join via {server}: {e.msg}", unreachable=isinstance(e, RequestFailed)
            ) from None
        version = _version_of_response(made)
        event_id, pdu = fill_membership_template(
            made.get("event"), version, user_id, room_id, "join", content, self._server_name, self._signing_key,
            self._now_ms(),
        )
        try:
            response = yield self._client.send_join(server, room_id, event_id, pdu_for_wire(pdu, version))
        except MatrixError as e:
            raise _TryNextServer(
                e.code, e.errcode, f"send_join via {server}: {e.msg}", unreachable=isinstance(e, RequestFailed)
            ) from None
        if not isinstance(response, dict):
            raise _TryNextServer(502, "M_BAD_JSON", "send_join answer is not an object")
        if isinstance(response.get("event"), dict):
            pdu = yield self._countersigned_join(response["event"], event_id, version)
        yield self._persister.serialised(room_id, self._persist_join, version, room_id, event_id, pdu, response)
        return event_id

    @defer.inlineCallbacks
    def _countersigned_join(self, returned, event_id, version):
        """The join as the resident returned it (restricted rooms): the same event, with
        valid signatures."""
        try:
            got_id, checked = yield self._pdus.verify_pdu(returned, version)
        except (InvalidEventFormat, SignatureError) as e:
            raise _TryNextServer(502, "M_BAD_JSON", f"send_join returned a bad event: {e.msg}") from None
        if got_id != event_id:
            raise _TryNextServer(502, "M_BAD_JSON", "send_join returned a different event")
        return checked

    @defer.inlineCallbacks
    def _persist_join(self, version, room_id, event_id, pdu, response):
        """Check and keep the state and auth chain of a ``send_join`` answer, then the join
        with that state as the state before it (call under the room's lock)."""
        state_pdus = response.get("state")
        chain_pdus = response.get("auth_chain")
        if not isinstance(state_pdus, list) or not isinstance(chain_pdus, list):
            raise _TryNextServer(502, "M_BAD_JSON", "send_join answer lacks state or auth_chain")
        state_ids = {}
        for raw in state_pdus:
            try:
                state_event_id, checked = checked_pdu(raw, version)
            except InvalidEventFormat as e:
                raise _TryNextServer(502, "M_BAD_JSON", f"send_join state holds a malformed event: {e.msg}") from None
            if "state_key" not in checked:
                raise _TryNextServer(502, "M_BAD_JSON", f"send_join state holds {state_event_id}, not a state event")
            state_ids[(checked["type"], checked["state_key"])] = state_event_id
        # Signatures, hashes and each event's own auth events (rejected if they refuse it).
        yield self._pdus.store_outliers(version, room_id, chain_pdus + state_pdus)

        stored = yield self._events.get_events(sorted(set(state_ids.values())), allow_rejected=True)
        for key, state_event_id in sorted(state_ids.items()):
            found = stored.get(state_event_id)
            if found is None:
                raise _TryNextServer(502, "M_BAD_JSON", f"state event {state_event_id} failed the checks")
            if found.rejected_reason:
                raise _TryNextServer(502, "M_BAD_JSON", f"state event {state_event_id} was rejected")
        create = stored.get(state_ids.get(CREATE_KEY))
        if create is None:
            raise _TryNextServer(502, "M_BAD_JSON", "the room state has no m.room.create event")
        if create.pdu.get("content", {}).get("room_version", "1") != version.identifier:
            raise _TryNextServer(502, "M_BAD_JSON", "make_join named another room version than the room's")
        if version.room_id_from_create_event and room_id != "!" + create.event_id[1:]:
            raise _TryNextServer(502, "M_BAD_JSON", "the m.room.create event is not this room's")

        wanted = set(auth_types_for_event(pdu, version)) | {CREATE_KEY, POWER_LEVELS_KEY}
        auth_events = [with_event_id(stored[state_ids[key]]) for key in sorted(wanted) if key in state_ids]
        try:
            check_auth(dict(pdu, event_id=event_id), auth_events, version)
        except AuthError as e:
            raise _TryNextServer(403, "M_FORBIDDEN", f"the join is not allowed by the room's state: {e.reason}") \
                from None

        yield self._rooms.store_room(room_id, version.identifier, create.sender, False, self._now_ms())
        yield self._adopt_state(room_id, state_ids)
        yield self._persister.persist_event(
            version, room_id, event_id, pdu, StateAt(ids=state_ids, group=None), notify_user_ids=[pdu["sender"]]
        )
        self.log.info("joined {room_id} as {user_id}", room_id=room_id, user_id=pdu["sender"])

    @defer.inlineCallbacks
    def _adopt_state(self, room_id, state_ids):
        """Make the state before our join the room's current state, at a stream position of
        its own just before the join, so that ``/sync`` (which gives the state at the start of
        the timeline) shows the room's state alongside the join."""
        old = yield self._events.get_current_state_ids(room_id)
        to_insert = {k: v for k, v in state_ids.items() if old.get(k) != v}
        to_delete = [k for k in old if k not in state_ids]
        if to_insert or to_delete:
            update = RoomUpdate(room_id=room_id, state_delta_to_insert=to_insert, state_delta_to_delete=to_delete)
            yield self._events.persist_events(PersistBatch(events=[], room_updates=[update]))

    # -- inviting -----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def invite_remote_user(self, room_version, room_id, invite_pdu, event_id, invite_room_state):
        """See :meth:`IRemoteRooms.invite_remote_user`.

        :raises MatrixError: the invitee server's error, or 502 when its answer is not our
            event with its valid signature added.
        """
        version = get_room_version(room_version)
        invitee = invite_pdu.get("state_key")
        destination = server_of(invitee)
        if destination is None:
            raise MatrixError(400, "M_INVALID_PARAM", f"{invitee!r} is not a user ID")
        ours = pdu_for_wire(invite_pdu, version)
        stripped = [pdu_for_wire(e, version) for e in invite_room_state]
        response = yield self._client.send_invite(destination, room_id, event_id, ours, version.identifier, stripped)
        signed = response.get("event") if isinstance(response, dict) else None
        if not isinstance(signed, dict):
            raise MatrixError(502, "M_BAD_JSON", f"{destination} did not return the invite")
        signed = pdu_for_wire(signed, version)

        def unsigned_part(pdu):
            return {k: v for k, v in pdu.items() if k != "signatures"}

        if unsigned_part(signed) != unsigned_part(ours):
            raise MatrixError(502, "M_BAD_JSON", f"{destination} returned a different invite")
        if (signed.get("signatures") or {}).get(self._server_name) != ours["signatures"][self._server_name]:
            raise MatrixError(502, "M_BAD_JSON", f"{destination} dropped our signature from the invite")
        try:
            yield self._keyring.verify_json_for_server(destination, redact(signed, version))
        except SignatureError as e:
            raise MatrixError(502, "M_BAD_JSON", f"{destination} did not sign the invite: {e.msg}") from None
        return signed

    # -- leaving and knocking -------------------------------------------------------------------

    def leave_remote_room(self, room_id, user_id, servers, content):
        """See :meth:`IRemoteRooms.leave_remote_room`."""
        return self._through_candidates(
            "leave", servers, room_id, self._out_of_band_via, "leave", room_id, user_id, content
        )

    def knock_remote_room(self, room_id, user_id, servers, content):
        """Knock on a room this server is not in (``make_knock``/``send_knock`` through one of
        ``servers``); the knock is kept as the user's out-of-band membership, with the
        ``knock_room_state`` the resident answered (stripped) for ``/sync``.

        :returns: Deferred firing with the knock event's ID.
        """
        return self._through_candidates(
            "knock on", servers, room_id, self._out_of_band_via, "knock", room_id, user_id, content
        )

    @defer.inlineCallbacks
    def _out_of_band_via(self, server, membership, room_id, user_id, content):
        """A leave or knock through ``server``, kept locally as an out-of-band membership."""
        try:
            if membership == "knock":
                made = yield self._client.make_knock(server, room_id, user_id, SUPPORTED_ROOM_VERSIONS)
            else:
                made = yield self._client.make_leave(server, room_id, user_id)
        except MatrixError as e:
            raise _TryNextServer(
                e.code, e.errcode, f"make_{membership} via {server}: {e.msg}", unreachable=isinstance(e, RequestFailed)
            ) from None
        version = _version_of_response(made)
        event_id, pdu = fill_membership_template(
            made.get("event"), version, user_id, room_id, membership, content, self._server_name,
            self._signing_key, self._now_ms(),
        )
        try:
            if membership == "knock":
                response = yield self._client.send_knock(server, room_id, event_id, pdu_for_wire(pdu, version))
            else:
                response = yield self._client.send_leave(server, room_id, event_id, pdu_for_wire(pdu, version))
        except MatrixError as e:
            raise _TryNextServer(
                e.code, e.errcode, f"send_{membership} via {server}: {e.msg}", unreachable=isinstance(e, RequestFailed)
            ) from None
        stored_pdu = pdu
        if membership == "knock":
            state = response.get("knock_room_state") if isinstance(response, dict) else None
            stripped = [
                strip_state_event(e) for e in state or ()
                if isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("sender"), str)
            ]
            stored_pdu = dict(pdu, unsigned={"knock_room_state": stripped})
        record = EventToPersist.from_pdu(
            event_id, stored_pdu, room_id=room_id, outlier=True, out_of_band_membership=True
        )
        orderings = yield self._events.persist_events(PersistBatch(events=[record]))
        position = orderings.get(event_id)
        if position is not None:
            self._notifier.notify(ROOM_EVENTS_STREAM, position, room_ids=[room_id], user_ids=[user_id])
        return event_id


def _version_of_response(made):
    """The room version of a ``make_*`` answer, which must be one we support."""
    identifier = made.get("room_version", "1") if isinstance(made, dict) else None
    try:
        return get_room_version(identifier)
    except (UnsupportedRoomVersion, TypeError):
        raise _TryNextServer(502, "M_INCOMPATIBLE_ROOM_VERSION", f"unsupported room version {identifier!r}") from None
