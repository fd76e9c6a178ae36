"""Creating rooms (``POST /createRoom``): the create event, the creator's join, power levels,
alias, preset state, initial state, name and topic, invites, in the spec's order.

Spec: Client-Server API, "Creation" (https://spec.matrix.org/v1.19/client-server-api/#creation):
the events are sent in this order: ``m.room.create``; the creator's ``m.room.member`` join;
``m.room.power_levels`` (with ``power_level_content_override`` applied); ``m.room.canonical_alias``
if ``room_alias_name`` was given; the preset's join rules, history visibility and guest access;
``initial_state``; ``m.room.name`` and ``m.room.topic``; invites. Presets: ``private_chat``
(invite / shared / can_join), ``trusted_private_chat`` (the same, and invitees get the
creator's power level; from room version 12 they become additional creators), ``public_chat``
(public / shared / forbidden). Room version 12 (https://spec.matrix.org/v1.19/rooms/v12/):
creators must not be listed in ``users`` and ``m.room.tombstone`` needs more than
``state_default``.
"""

import secrets

from twisted.internet import defer
from twisted.logger import Logger

from mxref.errors import InvalidIdentifier, MatrixError
from mxref.events.room_versions import ROOM_VERSIONS, get_room_version
from mxref.types import RoomAlias, UserID, generate_opaque_id

PRESETS = {
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}


class RoomCreator:
    """Creates rooms for local users.

    :param creator: an :class:`~mxref.rooms.creator.EventCreator`.
    :param membership: a :class:`~mxref.rooms.membership.MembershipUpdater` (invites).
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore` (aliases, directory).
    :param accounts: an :class:`~mxref.storage.interfaces.IAccountStore` (the creator's profile).
    :param server_name: our server name.
    :param default_room_version: the version used when a request names none.
    :param module_hooks: a :class:`~mxref.modules.hooks.ModuleHooks` asked before a room is
        created, or ``None``.
    """

    log = Logger()

    def __init__(self, creator, membership, rooms, accounts, server_name, default_room_version="12", rng=None,
                 module_hooks=None):
        self._creator = creator
        self._module_hooks = module_hooks
        self._membership = membership
        self._rooms = rooms
        self._accounts = accounts
        self._server_name = server_name
        self._default_room_version = default_room_version
        self._rng = rng or secrets.SystemRandom()

    @defer.inlineCallbacks
    def create_room(
        self,
        user_id,
        *,
        preset=None,
        visibility="private",
        room_alias_name=None,
        name=None,
        topic=None,
        invite=(),
        room_version=None,
        creation_content=None,
        initial_state=(),
        power_level_content_override=None,
        is_direct=False,
    ):
        """Create a room as ``user_id``; arguments as in the ``createRoom`` request body
        (already type-checked by the resource).

        :returns: Deferred firing with the new room's ID.
        :raises MatrixError: 400 ``M_UNSUPPORTED_ROOM_VERSION``, ``M_ROOM_IN_USE`` (alias
            taken), ``M_INVALID_PARAM``/``M_BAD_JSON`` for bad values; 403 if a requested state
            event is refused by the auth rules.
        """
        if self._module_hooks is not None:
            request = dict(
                preset=preset, visibility=visibility, room_alias_name=room_alias_name, name=name, topic=topic,
                invite=list(invite), room_version=room_version, creation_content=creation_content,
                initial_state=list(initial_state), power_level_content_override=power_level_content_override,
                is_direct=is_direct,
            )
            yield self._module_hooks.check_room_creation(user_id, request)
        version_id = room_version if room_version is not None else self._default_room_version
        if version_id not in ROOM_VERSIONS:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", f"Room version {version_id!r} is not supported")
        version = get_room_version(version_id)
        if visibility not in ("public", "private"):
            raise MatrixError(400, "M_INVALID_PARAM", "visibility must be 'public' or 'private'")
        if preset is None:
            preset = "public_chat" if visibility == "public" else "private_chat"
        if preset not in PRESETS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown preset {preset!r}")
        invitees = []
        for invitee in invite:
            try:
                invitees.append(str(UserID.parse(invitee)))
            except InvalidIdentifier:
                raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user ID to invite: {invitee!r}") from None

        alias = None
        if room_alias_name is not None:
            alias = self._alias_for(room_alias_name)
            if (yield self._rooms.get_alias(alias)) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", f"Room alias {alias} is already in use")

        trusted = preset == "trusted_private_chat"
        create_content = dict(creation_content or {})
        create_content.pop("creator", None)
        create_content.pop("room_version", None)
        additional_creators = None
        if version.privileged_creators:
            extra = create_content.pop("additional_creators", None)
            additional = list(extra) if isinstance(extra, list) else []
            if trusted:
                additional.extend(u for u in invitees if u not in additional)
            additional_creators = [u for u in additional if u != user_id] or None
        room_id = None
        if not version.room_id_from_create_event:
            room_id = f"!{generate_opaque_id(18, self._rng)}:{self._server_name}"
        room_id, _ = yield self._creator.create_room_event(
            version, user_id, create_content, room_id=room_id, additional_creators=additional_creators
        )

        send = self._creator.send_event
        profile = yield self._accounts.get_profile(user_id)
        join_content = {"membership": "join"}
        if profile is not None and profile.displayname is not None:
            join_content["displayname"] = profile.displayname
        if profile is not None and profile.avatar_url is not None:
            join_content["avatar_url"] = profile.avatar_url
        yield send(room_id, user_id, "m.room.member", join_content, state_key=user_id)

        creators = {user_id} | set(additional_creators or ())
        power_levels = self._power_levels(version, user_id, creators, invitees if trusted else ())
        if power_level_content_override:
            power_levels.update(power_level_content_override)
        yield send(room_id, user_id, "m.room.power_levels", power_levels, state_key="")

        if alias is not None:
            yield send(room_id, user_id, "m.room.canonical_alias", {"alias": alias}, state_key="")

        join_rule, history_visibility, guest_access = PRESETS[preset]
        initial = {}
        for entry in initial_state:
            initial[(entry["type"], entry.get("state_key", ""))] = entry["content"]
        preset_events = [
            ("m.room.join_rules", {"join_rule": join_rule}),
            ("m.room.history_visibility", {"history_visibility": history_visibility}),
            ("m.room.guest_access", {"guest_access": guest_access}),
        ]
        for event_type, content in preset_events:
            if (event_type, "") not in initial:
                yield send(room_id, user_id, event_type, content, state_key="")
        for (event_type, state_key), content in initial.items():
            yield send(room_id, user_id, event_type, content, state_key=state_key)

        if name is not None:
            yield send(room_id, user_id, "m.room.name", {"name": name}, state_key="")
        if topic is not None:
            topic_content = {"topic": topic, "m.topic": {"m.text": [{"body": topic, "mimetype": "text/plain"}]}}
            yield send(room_id, user_id, "m.room.topic", topic_content, state_key="")

        for invitee in invitees:
            yield self._membership.invite(user_id, room_id, invitee, is_direct=is_direct)

        if alias is not None:
            created = yield self._rooms.create_alias(alias, room_id, user_id, [self._server_name])
            if not created:
                raise MatrixError(400, "M_ROOM_IN_USE", f"Room alias {alias} is already in use")
        if visibility == "public":
            yield self._rooms.set_room_is_public(room_id, True)
        self.log.info("{user_id} created room {room_id} (version {version})", user_id=user_id, room_id=room_id, version=version.identifier)
        return room_id

    def _alias_for(self, room_alias_name):
        if not isinstance(room_alias_name, str) or not room_alias_name or ":" in room_alias_name:
            raise MatrixError(400, "M_INVALID_PARAM", "room_alias_name must be a non-empty localpart without ':'")
        try:
            return str(RoomAlias.parse(f"#{room_alias_name}:{self._server_name}"))
        except InvalidIdentifier as e:
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room alias: {e.msg}") from None

    @staticmethod
    def _power_levels(version, user_id, creators, trusted_invitees):
        """The default ``m.room.power_levels`` content for a new room (before overrides)."""
        users = {}
        if not version.privileged_creators:
            users[user_id] = 100
            for invitee in trusted_invitees:
                users[invitee] = 100
        events = {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if version.privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        }
        return {
            "users": users,
            "users_default": 0,
            "events": events,
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0,
            "notifications": {"room": 50},
        }

