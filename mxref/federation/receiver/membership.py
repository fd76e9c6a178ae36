"""Membership handshakes other servers make with us: as a resident server of a room
(``make_join``/``send_join``, ``make_leave``/``send_leave``, ``make_knock``/``send_knock``) and
as the server of an invited user (``invite``).

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):

* "Joining Rooms": ``GET /make_join/{roomId}/{userId}?ver=`` returns an unsigned template
  (``ver`` defaults to ``["1"]``; 400 ``M_INCOMPATIBLE_ROOM_VERSION`` if the room's version is
  not offered; 403 if the join would not be allowed). ``PUT /v2/send_join`` takes the signed
  event, which must be an ``m.room.member`` join whose ``state_key`` is its ``sender`` on the
  origin server; the resident signs it when it authorised a restricted join, accepts it, and
  returns the state before the join and its auth chain. With ``omit_members=true`` (partial
  state, MSC3706) membership events may be left out of ``state`` except those of the room's
  heroes, and ``auth_chain`` may leave out events already in ``state``; the response then has
  ``members_omitted: true`` and ``servers_in_room``.
* "Restricted rooms": the resident checks the ``allow`` conditions and names in
  ``join_authorised_via_users_server`` a local user who can invite; 400
  ``M_UNABLE_TO_AUTHORISE_JOIN`` when it is in none of the allowed rooms, 400
  ``M_UNABLE_TO_GRANT_JOIN`` when none of its users can invite, 403 when the user meets no
  condition.
* "Leaving Rooms (Rejecting Invites)" and "Knocking upon a room": the same pattern;
  ``send_knock`` answers ``knock_room_state``.
* "Inviting to a room": ``PUT /v2/invite/{roomId}/{eventId}`` with ``{room_version, event,
  invite_room_state}``; the invited server checks the event, signs it and returns it. Since
  v1.16 ``invite_room_state`` holds full PDUs including ``m.room.create`` (required from room
  version 12). We keep the invite as an out-of-band membership so the user's ``/sync`` lists
  it, with the stripped state in ``unsigned.invite_room_state``.
* "Server Access Control Lists": every endpoint here answers 403 to an ACL-denied origin.
"""

from twisted.internet import defer
from twisted.logger import Logger

from mxref.client.serialise import strip_state_event
from mxref.errors import AuthError, InvalidEventFormat, MatrixError, SignatureError
from mxref.events.authrules import (
    auth_types_for_event,
    check_auth,
    get_power_level_value,
    get_user_power_level,
)
from mxref.events.builder import build_event, select_prev_events
from mxref.events.hashing import compute_event_id, compute_reference_hash, encode_unpadded_base64
from mxref.events.redaction import redact
from mxref.events.room_versions import EventFormat, UnsupportedRoomVersion, get_room_version
from mxref.events.signing import sign_json
from mxref.federation.receiver.pipeline import ACCEPTED, create_event_id_of, wire_pdu
from mxref.rooms.persister import ROOM_EVENTS_STREAM
from mxref.rooms.state import with_event_id
from mxref.storage.records import EventToPersist, PersistBatch
from mxref.types import UserID

JOIN_RULES_KEY = ("m.room.join_rules", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")
CREATE_KEY = ("m.room.create", "")
NAME_KEY = ("m.room.name", "")
CANONICAL_ALIAS_KEY = ("m.room.canonical_alias", "")

#: How many members make up a room's heroes (Client-Server API, ``m.heroes``).
MAX_HEROES = 5


def _server_of(user_id):
    try:
        return UserID.parse(user_id).server_name
    except ValueError:
        return None


def add_signature(pdu, room_version, server_name, signing_key):
    """A copy of a hashed PDU with our signature added over its redacted form (the content
    hash is left as it is). Not a Deferred."""
    signed = sign_json(redact(pdu, room_version), server_name, signing_key)
    result = dict(pdu)
    signatures = {server: dict(keys) for server, keys in (pdu.get("signatures") or {}).items()}
    signatures.setdefault(server_name, {}).update(signed["signatures"][server_name])
    result["signatures"] = signatures
    return result


class ResidentMembership:
    """Serves the membership handshakes of other servers.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param accounts: an :class:`~mxref.storage.interfaces.IAccountStore` (invited users exist).
    :param creator: an :class:`~mxref.rooms.creator.EventCreator` (stripped state).
    :param pdu_receiver: a :class:`~mxref.federation.receiver.pipeline.PduReceiver`.
    :param room_reads: a :class:`~mxref.federation.receiver.room_reads.FederationRoomReads`.
    :param acl_checker: a :class:`~mxref.federation.acl.ServerAclChecker`.
    :param notifier: a :class:`~mxref.notifier.Notifier` (out-of-band invites).
    :param server_name: our server name.
    :param signing_key: our signing key.
    :param clock: an ``IReactorTime``.
    :param forward_event: called as ``forward_event(origin, event_id)`` (may return a Deferred)
        after a join, leave or knock handed to us is accepted, to send it on to the room's other
        servers (:meth:`mxref.federation.sender.sender.FederationSender.send_on_behalf_of`), or
        ``None``.
    """

    log = Logger()

    def __init__(
        self,
        events,
        rooms,
        accounts,
        creator,
        pdu_receiver,
        room_reads,
        acl_checker,
        notifier,
        server_name,
        signing_key,
        clock,
        forward_event=None,
        module_hooks=None,
    ):
        self._module_hooks = module_hooks
        self._events = events
        self._rooms = rooms
        self._accounts = accounts
        self._creator = creator
        self._pdus = pdu_receiver
        self._reads = room_reads
        self._acl = acl_checker
        self._notifier = notifier
        self._server_name = server_name
        self._signing_key = signing_key
        self._clock = clock
        self._forward_event = forward_event

    def _now_ms(self):
        return int(self._clock.seconds() * 1000)

    # -- make_* ---------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _resident_room_version(self, room_id, origin):
        identifier = yield self._rooms.get_room_version(room_id)
        if identifier is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        hosts = yield self._rooms.get_joined_hosts(room_id)
        if self._server_name not in hosts:
            raise MatrixError(404, "M_NOT_FOUND", f"This server is not in room {room_id}")
        yield self._acl.check_allowed(room_id, origin)
        return get_room_version(identifier)

    @defer.inlineCallbacks
    def make_membership_event(self, origin, room_id, user_id, membership, supported_versions=None):
        """``GET /make_join``, ``/make_leave`` or ``/make_knock``: an event template.

        :param membership: ``"join"``, ``"leave"`` or ``"knock"``.
        :param supported_versions: the ``ver`` values (``None`` for ``make_leave``).
        :returns: Deferred firing with ``{"room_version", "event"}``.
        :raises MatrixError: 404 for a room we are not in; 403 for an ACL-denied origin, a user
            of another server, or a membership change the rules refuse; 400
            ``M_INCOMPATIBLE_ROOM_VERSION``; for restricted rooms 400
            ``M_UNABLE_TO_AUTHORISE_JOIN`` / ``M_UNABLE_TO_GRANT_JOIN``.
        """
        version = yield self._resident_room_version(room_id, origin)
        if _server_of(user_id) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"User {user_id} does not belong to {origin}")
        if supported_versions is not None and version.identifier not in supported_versions:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"Room version {version.identifier} is not among those offered",
                room_version=version.identifier,
            )
        if membership == "knock" and not version.knock_join_rule:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                "This room version does not support knocking",
                room_version=version.identifier,
            )
        content = {"membership": membership}
        proto = {
            "type": "m.room.member",
            "sender": user_id,
            "state_key": user_id,
            "content": content,
            "room_id": room_id,
        }
        keys = set(auth_types_for_event(proto, version)) | {CREATE_KEY, POWER_LEVELS_KEY}
        if membership == "join":
            authoriser = yield self._restricted_join_authoriser(version, room_id, user_id)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
                keys |= set(auth_types_for_event(proto, version))
        state = yield self._events.get_current_state(room_id, types=sorted(keys))
        auth_state = {key: with_event_id(stored) for key, stored in state.items()}
        prev_events = yield self._prev_events(version, room_id)
        built = build_event(
            room_version=version,
            room_id=room_id,
            sender=user_id,
            event_type="m.room.member",
            content=content,
            state_key=user_id,
            prev_events=prev_events,
            current_state=auth_state,
            origin_server_ts=self._now_ms(),
            server_name=self._server_name,
            signing_key=self._signing_key,
        )
        # Signed by us only to try it against the rules (the authorising server's signature
        # counts for restricted joins); the template goes out unsigned and unhashed.
        try:
            check_auth(
                dict(built, event_id=compute_event_id(built, version)), auth_state.values(), version
            )
        except AuthError as e:
            raise MatrixError(
                403, "M_FORBIDDEN", f"{user_id} may not {membership}: {e.reason}"
            ) from None
        template = {k: v for k, v in built.items() if k not in ("hashes", "signatures", "event_id")}
        template["origin"] = self._server_name
        return {"room_version": version.identifier, "event": template}

    @defer.inlineCallbacks
    def _prev_events(self, version, room_id):
        extremities = yield self._events.get_forward_extremities(room_id)
        chosen = select_prev_events(extremities)
        if version.event_format is not EventFormat.V1:
            return chosen
        stored = yield self._events.get_events([e for e, _ in chosen], allow_rejected=True)
        return [
            (
                e,
                depth,
                {"sha256": encode_unpadded_base64(compute_reference_hash(stored[e].pdu, version))},
            )
            for e, depth in chosen
        ]

    @defer.inlineCallbacks
    def _restricted_join_authoriser(self, version, room_id, user_id):
        """For a restricted room: the local user who authorises ``user_id``'s join, or
        ``None`` when the join needs no authorisation."""
        if not version.restricted_join_rule:
            return None
        state = yield self._events.get_current_state(
            room_id,
            types=[JOIN_RULES_KEY, POWER_LEVELS_KEY, CREATE_KEY, ("m.room.member", user_id)],
        )
        join_rules = state.get(JOIN_RULES_KEY)
        content = join_rules.pdu.get("content", {}) if join_rules else {}
        rule = content.get("join_rule")
        restricted = (
            ("restricted", "knock_restricted")
            if version.knock_restricted_join_rule
            else ("restricted",)
        )
        if rule not in restricted:
            return None
        own = state.get(("m.room.member", user_id))
        if own is not None and own.membership in ("join", "invite"):
            return None
        allowed_rooms = [
            entry.get("room_id")
            for entry in content.get("allow", []) or []
            if isinstance(entry, dict)
            and entry.get("type") == "m.room_membership"
            and isinstance(entry.get("room_id"), str)
        ]
        resident_in = []
        for allowed in allowed_rooms:
            hosts = yield self._rooms.get_joined_hosts(allowed)
            if self._server_name in hosts:
                resident_in.append(allowed)
        if not resident_in:
            raise MatrixError(
                400,
                "M_UNABLE_TO_AUTHORISE_JOIN",
                "This server is in none of the rooms that allow joining",
            )
        satisfied = False
        for allowed in resident_in:
            members = yield self._rooms.get_members(allowed, membership="join")
            if user_id in members:
                satisfied = True
                break
        if not satisfied:
            raise MatrixError(
                403, "M_FORBIDDEN", f"{user_id} is in none of the rooms that allow joining"
            )
        auth_state = {key: with_event_id(stored) for key, stored in state.items()}
        power_content = auth_state.get(POWER_LEVELS_KEY, {}).get("content", {})
        invite_level = get_power_level_value(power_content, "invite", 0, version)
        members = yield self._rooms.get_members(room_id, membership="join")
        for member_id in sorted(members):
            if (
                _server_of(member_id) == self._server_name
                and get_user_power_level(member_id, auth_state, version) >= invite_level
            ):
                return member_id
        raise MatrixError(
            400, "M_UNABLE_TO_GRANT_JOIN", "No user of this server can authorise the join"
        )

    # -- send_* ---------------------------------------------------------------------------------

    def _check_membership_pdu(self, origin, room_id, event_id, pdu, membership, version):
        """The shape checks of ``send_join``/``send_leave``/``send_knock`` ("Joining Rooms": a
        wrong type or membership, a sender of another server or a ``state_key`` other than the
        sender is refused with ``M_INVALID_PARAM``)."""
        if not isinstance(pdu, dict):
            raise MatrixError(400, "M_BAD_JSON", "The body must be the membership event")
        content = pdu.get("content")
        if (
            pdu.get("type") != "m.room.member"
            or not isinstance(content, dict)
            or content.get("membership") != membership
        ):
            raise MatrixError(
                400, "M_INVALID_PARAM", f"Not an m.room.member event with membership {membership}"
            )
        if pdu.get("state_key") != pdu.get("sender"):
            raise MatrixError(400, "M_INVALID_PARAM", "state_key must be the sender")
        if _server_of(pdu.get("sender")) != origin:
            raise MatrixError(400, "M_INVALID_PARAM", f"The sender does not belong to {origin}")
        if pdu.get("room_id") != room_id:
            raise MatrixError(400, "M_INVALID_PARAM", "The event is for another room")
        try:
            computed = compute_event_id(wire_pdu(pdu, version), version)
        except InvalidEventFormat as e:
            raise MatrixError(400, "M_BAD_JSON", e.msg) from None
        if computed != event_id:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"The event's ID is {computed}, not {event_id}"
            )

    @defer.inlineCallbacks
    def _accept_membership(self, origin, room_id, event_id, pdu, membership):
        """Check, maybe countersign, and run a membership event through the pipeline.

        :returns: Deferred firing with ``(version, pdu as persisted, signed_by_us)``.
        """
        version = yield self._resident_room_version(room_id, origin)
        pdu = wire_pdu(pdu, version) if isinstance(pdu, dict) else pdu
        self._check_membership_pdu(origin, room_id, event_id, pdu, membership, version)
        signed_by_us = False
        authoriser = pdu["content"].get("join_authorised_via_users_server")
        if membership == "join" and version.restricted_join_rule and isinstance(authoriser, str):
            if _server_of(authoriser) != self._server_name:
                raise MatrixError(
                    400, "M_INVALID_PARAM", "join_authorised_via_users_server is not a user of ours"
                )
            expected = yield self._restricted_join_authoriser(version, room_id, pdu["sender"])
            if expected is not None:
                pdu = add_signature(pdu, version, self._server_name, self._signing_key)
                signed_by_us = True
        try:
            yield self._pdus.verify_pdu(pdu, version)
        except InvalidEventFormat as e:
            raise MatrixError(400, "M_BAD_JSON", e.msg) from None
        except SignatureError as e:
            # "Joining Rooms": a bad signature is refused with M_INVALID_PARAM.
            raise MatrixError(400, "M_INVALID_PARAM", e.msg) from None
        outcome = yield self._pdus.receive_pdu(origin, pdu)
        if outcome.status != ACCEPTED:
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                f"The {membership} was not accepted: {outcome.reason or outcome.status}",
            )
        if self._forward_event is not None:
            # The joining server only talks to us: the other servers hear of it from us.
            try:
                yield self._forward_event(origin, event_id)
            except Exception:
                self.log.failure("could not pass {event_id} on to the room", event_id=event_id)
        return version, pdu, signed_by_us

    @defer.inlineCallbacks
    def send_join(self, origin, room_id, event_id, pdu, omit_members=False):
        """``PUT /v2/send_join/{roomId}/{eventId}``.

        :returns: Deferred firing with ``{origin, state, auth_chain, members_omitted,
            servers_in_room, event?}``.
        """
        hosts_before = yield self._rooms.get_joined_hosts(room_id)
        version, accepted, signed_by_us = yield self._accept_membership(
            origin, room_id, event_id, pdu, "join"
        )
        stored = yield self._events.get_event(event_id)
        state = yield self._reads.state_ids_before(room_id, stored)
        if omit_members:
            heroes = yield self._hero_member_keys(state, accepted["sender"])
            state = {k: v for k, v in state.items() if k[0] != "m.room.member" or k in heroes}
        state_ids = sorted(set(state.values()))
        roots = set(state_ids) | set(stored.auth_event_ids)
        create_id = create_event_id_of(room_id, version)
        if create_id:
            roots.add(create_id)
        chain_ids = set((yield self._events.get_auth_chain_ids(sorted(roots)))) | set(
            stored.auth_event_ids
        )
        if create_id:
            chain_ids.add(create_id)
        if omit_members:
            # "any events that are returned in state may be omitted from auth_chain"
            chain_ids -= set(state_ids)
        found = yield self._events.get_events(
            sorted(set(state_ids) | chain_ids), allow_rejected=True
        )
        response = {
            "origin": self._server_name,
            "state": [wire_pdu(found[i].pdu, version) for i in state_ids if i in found],
            "auth_chain": [
                wire_pdu(e.pdu, version)
                for e in sorted(
                    (found[i] for i in chain_ids if i in found), key=lambda e: (e.depth, e.event_id)
                )
            ],
            "members_omitted": bool(omit_members),
            "servers_in_room": sorted(hosts_before),
        }
        if signed_by_us:
            response["event"] = accepted
        return response

    @defer.inlineCallbacks
    def _hero_member_keys(self, state, joiner):
        """The member state keys to keep in a partial-state response: the room's heroes when it
        has neither a name nor a canonical alias (as clients then name it after them)."""
        if NAME_KEY in state or CANONICAL_ALIAS_KEY in state:
            return set()
        member_ids = {
            key[1]: i for key, i in state.items() if key[0] == "m.room.member" and key[1] != joiner
        }
        stored = yield self._events.get_events(list(member_ids.values()))
        current = sorted(
            u
            for u, i in member_ids.items()
            if i in stored and stored[i].membership in ("join", "invite")
        )
        if not current:
            current = sorted(
                u
                for u, i in member_ids.items()
                if i in stored and stored[i].membership in ("leave", "ban")
            )
        return {("m.room.member", u) for u in current[:MAX_HEROES]}

    @defer.inlineCallbacks
    def send_leave(self, origin, room_id, event_id, pdu):
        """``PUT /v2/send_leave/{roomId}/{eventId}``.

        :returns: Deferred firing with ``{}``.
        """
        yield self._accept_membership(origin, room_id, event_id, pdu, "leave")
        return {}

    @defer.inlineCallbacks
    def send_knock(self, origin, room_id, event_id, pdu):
        """``PUT /v1/send_knock/{roomId}/{eventId}``.

        :returns: Deferred firing with ``{knock_room_state}`` (full PDUs, ``m.room.create`` first).
        """
        version, _pdu, _signed = yield self._accept_membership(
            origin, room_id, event_id, pdu, "knock"
        )
        state = yield self._creator.stripped_state_events(room_id)
        return {"knock_room_state": [wire_pdu(e, version) for e in state]}

    # -- invite ---------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def on_invite(self, origin, room_id, event_id, room_version, pdu, invite_room_state):
        """``PUT /v2/invite/{roomId}/{eventId}``: countersign an invite of one of our users.

        :returns: Deferred firing with ``{"event": the event with our signature}``.
        :raises MatrixError: 400 ``M_INCOMPATIBLE_ROOM_VERSION`` for a room version we do not
            support; 400 ``M_INVALID_PARAM``/``M_MISSING_PARAM``/``M_BAD_JSON`` for a malformed
            invite or invite state; 403 for an ACL-denied origin, a sender of another server, a
            bad signature or a user we do not have.
        """
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"Room version {room_version!r} is not supported",
                room_version=room_version,
            ) from None
        if not isinstance(pdu, dict):
            raise MatrixError(400, "M_BAD_JSON", "event must be an object")
        received_unsigned = pdu.get("unsigned")
        pdu = wire_pdu(pdu, version)
        content = pdu.get("content")
        if (
            pdu.get("type") != "m.room.member"
            or not isinstance(content, dict)
            or content.get("membership") != "invite"
        ):
            raise MatrixError(400, "M_INVALID_PARAM", "Not an m.room.member invite")
        if _server_of(pdu.get("sender")) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"The sender does not belong to {origin}")
        invitee = pdu.get("state_key")
        if not isinstance(invitee, str) or _server_of(invitee) != self._server_name:
            raise MatrixError(
                400, "M_INVALID_PARAM", "The invited user does not belong to this server"
            )
        if pdu.get("room_id") != room_id:
            raise MatrixError(400, "M_INVALID_PARAM", "The event is for another room")
        user = yield self._accounts.get_user(invitee)
        if user is None or user.deactivated:
            # The spec lists 400 and 403 only; a 400 would make the sender retry with v1.
            raise MatrixError(403, "M_FORBIDDEN", f"There is no user {invitee} to invite")
        if self._module_hooks is not None:
            # Modules' invite checks see invites from other servers too (a refusal is a 403
            # for the inviting server).
            yield self._module_hooks.check_invite(pdu.get("sender"), invitee, room_id)
        try:
            computed, checked = yield self._pdus.verify_pdu(pdu, version)
        except (InvalidEventFormat, SignatureError) as e:
            raise MatrixError(
                400 if isinstance(e, InvalidEventFormat) else 403, e.errcode, e.msg
            ) from None
        if computed != event_id:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"The event's ID is {computed}, not {event_id}"
            )
        known_version = yield self._rooms.get_room_version(room_id)
        if known_version is not None:
            yield self._acl.check_allowed(room_id, origin)
        stripped = _stripped_invite_state(invite_room_state, room_id, version)
        signed = add_signature(checked, version, self._server_name, self._signing_key)

        hosts = yield self._rooms.get_joined_hosts(room_id) if known_version is not None else set()
        if self._server_name not in hosts:
            # We are not in the room: keep the invite as the user's out-of-band membership.
            stored_pdu = dict(signed, unsigned={"invite_room_state": stripped})
            record = EventToPersist.from_pdu(
                event_id, stored_pdu, room_id=room_id, outlier=True, out_of_band_membership=True
            )
            orderings = yield self._events.persist_events(PersistBatch(events=[record]))
            position = orderings.get(event_id)
            if position is not None:
                self._notifier.notify(
                    ROOM_EVENTS_STREAM, position, room_ids=[room_id], user_ids=[invitee]
                )
        # "The event with the invited server's signature added. All other fields of the events
        # should remain untouched."
        if isinstance(received_unsigned, dict):
            signed = dict(signed, unsigned=received_unsigned)
        return {"event": signed}


def _stripped_invite_state(invite_room_state, room_id, version):
    """The stripped form of ``invite_room_state``, checked as far as the spec requires: from
    room version 12 it must hold this room's ``m.room.create`` event."""
    if invite_room_state is None:
        invite_room_state = []
    if not isinstance(invite_room_state, list):
        raise MatrixError(400, "M_BAD_JSON", "invite_room_state must be an array")
    entries = [
        e
        for e in invite_room_state
        if isinstance(e, dict)
        and isinstance(e.get("type"), str)
        and isinstance(e.get("sender"), str)
    ]
    creates = [e for e in entries if e.get("type") == "m.room.create"]
    if version.room_id_from_create_event:
        if not creates:
            raise MatrixError(
                400, "M_MISSING_PARAM", "invite_room_state must include the m.room.create event"
            )
        try:
            create_id = compute_event_id(wire_pdu(creates[0], version), version)
        except (InvalidEventFormat, ValueError):
            raise MatrixError(
                400, "M_INVALID_PARAM", "invite_room_state holds a malformed m.room.create"
            ) from None
        if "!" + create_id[1:] != room_id:
            raise MatrixError(
                400, "M_INVALID_PARAM", "invite_room_state's m.room.create is for another room"
            )
    return [strip_state_event(e) for e in entries]
