"""Membership changes requested by local users: join, invite, leave, kick, ban, unban.

Spec: Client-Server API, "Room membership" (joining, inviting, leaving, kicking, banning,
https://spec.matrix.org/v1.19/client-server-api/#room-membership), "Restricted rooms" (the
joining server checks the ``allow`` conditions and names an authorising user in
``join_authorised_via_users_server``); the authorization rules of the room version decide
whether each resulting ``m.room.member`` event is allowed.
"""

from twisted.internet import defer
from twisted.logger import Logger

from mxref.errors import MatrixError
from mxref.events.authrules import get_power_level_value, get_user_power_level
from mxref.rooms.state import with_event_id
from mxref.types import RoomAlias, UserID

JOIN_RULES_KEY = ("m.room.join_rules", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")
CREATE_KEY = ("m.room.create", "")


class MembershipUpdater:
    """Turns membership requests into ``m.room.member`` events, locally or over federation.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param accounts: an :class:`~mxref.storage.interfaces.IAccountStore` (profiles).
    :param creator: an :class:`~mxref.rooms.creator.EventCreator`.
    :param remote_rooms: an :class:`~mxref.rooms.interfaces.IRemoteRooms`.
    :param server_name: our server name.
    :param module_hooks: a :class:`~mxref.modules.hooks.ModuleHooks` asked about invites, or ``None``.
    """

    log = Logger()

    def __init__(self, events, rooms, accounts, creator, remote_rooms, server_name, module_hooks=None):
        self._module_hooks = module_hooks
        self._events = events
        self._rooms = rooms
        self._accounts = accounts
        self._creator = creator
        self._remote = remote_rooms
        self._server_name = server_name

    def is_local(self, user_id) -> bool:
        """Whether ``user_id`` belongs to this server."""
        return UserID.parse(user_id).server_name == self._server_name

    @defer.inlineCallbacks
    def _profile_content(self, user_id):
        content = {}
        if self.is_local(user_id):
            profile = yield self._accounts.get_profile(user_id)
            if profile is not None:
                if profile.displayname is not None:
                    content["displayname"] = profile.displayname
                if profile.avatar_url is not None:
                    content["avatar_url"] = profile.avatar_url
        return content

    @defer.inlineCallbacks
    def _we_are_in_room(self, room_id):
        version = yield self._rooms.get_room_version(room_id)
        if version is None:
            return False
        hosts = yield self._rooms.get_joined_hosts(room_id)
        return self._server_name in hosts

    @defer.inlineCallbacks
    def resolve_room(self, room_id_or_alias):
        """A room ID and servers to join through, for a room ID or an alias.

        :returns: Deferred firing with ``(room_id, servers)``.
        :raises MatrixError: 404 for an unknown alias, 400 for something that is neither.
        """
        if room_id_or_alias.startswith("#"):
            alias = RoomAlias.parse(room_id_or_alias)
            if alias.server_name == self._server_name:
                record = yield self._rooms.get_alias(str(alias))
                if record is None:
                    raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
                return record.room_id, list(record.servers)
            room_id, servers = yield self._remote.resolve_alias(str(alias))
            return room_id, list(servers)
        if room_id_or_alias.startswith("!"):
            return room_id_or_alias, []
        raise MatrixError(400, "M_INVALID_PARAM", f"{room_id_or_alias!r} is not a room ID or alias")

    @defer.inlineCallbacks
    def join(self, user_id, room_id_or_alias, servers=(), reason=None):
        """Join ``user_id`` to a room (by ID or alias), over federation if we are not in it.

        :param servers: servers to try for a remote join (the ``via`` parameter).
        :returns: Deferred firing with the room ID.
        """
        room_id, alias_servers = yield self.resolve_room(room_id_or_alias)
        content = yield self._profile_content(user_id)
        content["membership"] = "join"
        if reason is not None:
            content["reason"] = reason
        if (yield self._we_are_in_room(room_id)):
            restricted = yield self._authorising_user_for_restricted_join(room_id, user_id)
            if restricted is not None:
                content["join_authorised_via_users_server"] = restricted
            yield self._creator.send_event(room_id, user_id, "m.room.member", content, state_key=user_id)
            return room_id
        candidates = _unique(list(servers) + alias_servers + _server_of_room(room_id) + (yield self._invite_servers(user_id, room_id)))
        candidates = [s for s in candidates if s != self._server_name]
        if not candidates:
            raise MatrixError(404, "M_NOT_FOUND", f"No known servers for room {room_id}")
        yield self._remote.join_remote_room(room_id, user_id, candidates, content)
        return room_id

    @defer.inlineCallbacks
    def _invite_servers(self, user_id, room_id):
        """The inviting server of a pending invite, a natural server to join through."""
        memberships = yield self._rooms.get_rooms_for_user(user_id, memberships=("invite", "knock"))
        for membership in memberships:
            if membership.room_id == room_id:
                event = yield self._events.get_event(membership.event_id)
                if event is not None:
                    return [UserID.parse(event.sender).server_name]
        return []

    @defer.inlineCallbacks
    def _authorising_user_for_restricted_join(self, room_id, user_id):
        """For a restricted room the user is not yet invited to or joined, check the ``allow``
        conditions and pick a local user with the invite power to authorise the join.

        :returns: Deferred firing with that user's ID, or ``None`` if the join rule is not
            restricted or the user needs no authorisation.
        :raises MatrixError: 403 when the user satisfies no ``allow`` condition.
        """
        version = yield self._creator.room_version_of(room_id)
        if not version.restricted_join_rule:
            return None
        state = yield self._events.get_current_state(room_id, types=[JOIN_RULES_KEY, POWER_LEVELS_KEY, CREATE_KEY])
        join_rules = state.get(JOIN_RULES_KEY)
        rule = join_rules.pdu.get("content", {}).get("join_rule") if join_rules else None
        if rule not in ("restricted",) and not (rule == "knock_restricted" and version.knock_restricted_join_rule):
            return None
        members = yield self._rooms.get_members(room_id)
        current = members.get(user_id)
        if current is not None and current.membership in ("join", "invite"):
            return None
        allow = join_rules.pdu.get("content", {}).get("allow", [])
        allowed_rooms = [
            entry.get("room_id")
            for entry in allow
            if isinstance(entry, dict) and entry.get("type") == "m.room_membership"
        ]
        user_rooms = yield self._rooms.get_rooms_for_user(user_id, memberships=("join",))
        if not {m.room_id for m in user_rooms} & set(allowed_rooms):
            raise MatrixError(403, "M_FORBIDDEN", "You are not a member of a room that allows joining this one")
        auth_state = {key: with_event_id(event) for key, event in state.items()}
        power_content = auth_state.get(POWER_LEVELS_KEY, {}).get("content", {})
        invite_level = get_power_level_value(power_content, "invite", 0, version)
        for member_id, member in sorted(members.items()):
            if member.membership != "join" or not self.is_local(member_id):
                continue
            if get_user_power_level(member_id, auth_state, version) >= invite_level:
                return member_id
        raise MatrixError(403, "M_FORBIDDEN", "No user on this server can authorise your join")

    @defer.inlineCallbacks
    def invite(self, sender, room_id, target, reason=None, is_direct=False):
        """Invite ``target`` to a room ``sender`` is in.

        :returns: Deferred firing with the invite event's ID.
        """
        UserID.parse(target)
        if self._module_hooks is not None:
            yield self._module_hooks.check_invite(sender, target, room_id)
        content = {"membership": "invite"}
        content.update((yield self._profile_content(target)))
        if reason is not None:
            content["reason"] = reason
        if is_direct:
            content["is_direct"] = True
        if not self.is_local(target):
            event_id = yield self._creator.send_remote_invite(room_id, sender, target, content, self._remote)
            return event_id
        event_id, _ = yield self._creator.send_event(room_id, sender, "m.room.member", content, state_key=target)
        return event_id

    @defer.inlineCallbacks
    def leave(self, user_id, room_id, reason=None):
        """Leave a room, or reject an invite or retract a knock.

        :returns: Deferred firing with the leave event's ID.
        """
        content = {"membership": "leave"}
        if reason is not None:
            content["reason"] = reason
        if (yield self._we_are_in_room(room_id)):
            event_id, _ = yield self._creator.send_event(room_id, user_id, "m.room.member", content, state_key=user_id)
            return event_id
        servers = yield self._invite_servers(user_id, room_id)
        if not servers:
            raise MatrixError(403, "M_FORBIDDEN", "You are not invited to or joined in this room")
        event_id = yield self._remote.leave_remote_room(room_id, user_id, servers, content)
        return event_id

    @defer.inlineCallbacks
    def set_membership_of_other(self, sender, room_id, target, membership, reason=None):
        """Kick (``leave``), ban (``ban``) or unban (``leave`` of a banned user) ``target``.

        :returns: Deferred firing with the event ID.
        """
        UserID.parse(target)
        content = {"membership": membership}
        if reason is not None:
            content["reason"] = reason
        event_id, _ = yield self._creator.send_event(room_id, sender, "m.room.member", content, state_key=target)
        return event_id


def _unique(values):
    seen = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


def _server_of_room(room_id):
    """The server part of a pre-v12 room ID, as a last resort to join through."""
    _, sep, server = room_id.partition(":")
    return [server] if sep and server else []
