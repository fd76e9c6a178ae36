"""Reading and changing user profiles, and carrying profile changes into room memberships.

Spec (v1.19), Client-Server API, "Profiles": ``GET /profile/{userId}``, ``GET``/``PUT``/
``DELETE /profile/{userId}/{keyName}`` (``keyName`` must be ``avatar_url``, ``displayname``,
``m.tz`` or a namespaced identifier, else 400 ``M_INVALID_PARAM``; 404 when the user or field
does not exist; ``null`` values may be refused; a profile change is only allowed to the user
themself, 403 otherwise). "Events on Change of Profile Information": after a change "the
server MUST send an ``m.room.member`` event to every room the user is joined to", keeping the
membership and the other content. This server stores ``displayname`` and ``avatar_url``
(``avatar_url`` must be an MXC URI); setting any other field is refused with 403
``M_FORBIDDEN``, which the ``m.profile_fields`` capability should advertise.

Profiles of users on other servers are fetched through an optional :class:`IRemoteProfiles`
(the Server-Server API's ``query/profile``); without one they are reported as not found.
"""

import re

from twisted.logger import Logger
from zope.interface import Interface

from mxref.errors import MatrixError
from mxref.types import UserID

#: The profile fields this server stores.
STORED_FIELDS = ("displayname", "avatar_url")

#: The longest display name accepted, in characters (Synapse's limit).
MAX_DISPLAYNAME_LENGTH = 256

#: The longest avatar URL accepted, in characters (Synapse's limit).
MAX_AVATAR_URL_LENGTH = 1000

_KEY_NAME = re.compile(r"avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_MXC_URI = re.compile(r"mxc://[^/\s]+/[^/\s]+")


class IRemoteProfiles(Interface):
    """Profiles of users on other servers (implemented by the federation layer)."""

    def get_profile(user_id, field=None):
        """Ask the user's server for their profile.

        :param field: ``None`` for the whole profile, or one field name.
        :returns: Deferred firing with a dict of profile fields.
        :raises MatrixError: 404 ``M_NOT_FOUND`` for an unknown user or unreachable server.
        """


def check_key_name(key_name):
    """Refuse a ``keyName`` path parameter the spec does not allow. Not a Deferred.

    :raises MatrixError: 400 ``M_INVALID_PARAM``.
    """
    if not _KEY_NAME.fullmatch(key_name):
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid profile key {key_name!r}")
    return key_name


def check_field_value(key_name, value):
    """Check a new value of a stored field. Not a Deferred.

    :raises MatrixError: 400 ``M_BAD_JSON`` for a value that is not a string, 400
        ``M_INVALID_PARAM`` for one too long or an avatar URL that is not an MXC URI.
    """
    if not isinstance(value, str):
        raise MatrixError(400, "M_BAD_JSON", f"{key_name} must be a string")
    if key_name == "displayname" and len(value) > MAX_DISPLAYNAME_LENGTH:
        raise MatrixError(
            400,
            "M_INVALID_PARAM",
            f"displayname is longer than {MAX_DISPLAYNAME_LENGTH} characters",
        )
    if key_name == "avatar_url":
        if len(value) > MAX_AVATAR_URL_LENGTH:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"avatar_url is longer than {MAX_AVATAR_URL_LENGTH} characters",
            )
        if value and not _MXC_URI.fullmatch(value):
            raise MatrixError(400, "M_INVALID_PARAM", "avatar_url must be an mxc:// URI")
    return value


class ProfileService:
    """Profiles of local users (and, when given, remote ones).

    :param accounts: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param creator: an :class:`~mxref.rooms.creator.EventCreator` (membership updates).
    :param server_name: our server name.
    :param remote_profiles: an :class:`IRemoteProfiles`, or ``None`` to report remote users
        as not found.
    """

    log = Logger()

    def __init__(self, accounts, rooms, events, creator, server_name, remote_profiles=None):
        self._accounts = accounts
        self._rooms = rooms
        self._events = events
        self._creator = creator
        self._server_name = server_name
        self._remote = remote_profiles

    def _parse_user(self, user_id):
        try:
            return UserID.parse(user_id)
        except MatrixError:
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user ID {user_id!r}") from None

    async def _local_profile(self, user_id):
        if await self._accounts.get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "Profile not found")
        profile = await self._accounts.get_profile(user_id)
        fields = {}
        if profile is not None:
            if profile.displayname is not None:
                fields["displayname"] = profile.displayname
            if profile.avatar_url is not None:
                fields["avatar_url"] = profile.avatar_url
        return fields

    async def get_profile(self, user_id):
        """All profile fields of a user.

        :raises MatrixError: 404 ``M_NOT_FOUND`` for an unknown user.
        :returns: (coroutine) a dict.
        """
        user = self._parse_user(user_id)
        if user.server_name != self._server_name:
            if self._remote is None:
                raise MatrixError(404, "M_NOT_FOUND", "Profile not found")
            return dict(await self._remote.get_profile(user_id))
        return await self._local_profile(user_id)

    async def get_field(self, user_id, key_name):
        """One profile field, ``{key_name: value}``.

        :raises MatrixError: 404 ``M_NOT_FOUND`` for an unknown user or an unset field.
        """
        check_key_name(key_name)
        user = self._parse_user(user_id)
        if user.server_name != self._server_name:
            if self._remote is None:
                raise MatrixError(404, "M_NOT_FOUND", "Profile not found")
            fields = dict(await self._remote.get_profile(user_id, key_name))
        else:
            fields = await self._local_profile(user_id)
        if key_name not in fields:
            raise MatrixError(404, "M_NOT_FOUND", f"The user has no {key_name}")
        return {key_name: fields[key_name]}

    def _check_may_change(self, requester, user_id, key_name):
        check_key_name(key_name)
        self._parse_user(user_id)
        if requester.user_id != user_id:
            raise MatrixError(403, "M_FORBIDDEN", "You may only change your own profile")
        if key_name not in STORED_FIELDS:
            raise MatrixError(
                403, "M_FORBIDDEN", f"This server does not store the profile field {key_name}"
            )

    async def set_field(self, requester, user_id, key_name, value):
        """Set ``displayname`` or ``avatar_url`` and update the user's joined rooms.

        An empty string clears the field.

        :raises MatrixError: 403 ``M_FORBIDDEN`` for another user's profile or an unsupported
            field; 400 for a bad value.
        """
        self._check_may_change(requester, user_id, key_name)
        check_field_value(key_name, value)
        await self._store_field(user_id, key_name, value or None)

    async def delete_field(self, requester, user_id, key_name):
        """Remove a field (succeeds if it was not set).

        :raises MatrixError: 403 ``M_FORBIDDEN`` for another user's profile.
        """
        check_key_name(key_name)
        if key_name not in STORED_FIELDS and requester.user_id == user_id:
            return
        self._check_may_change(requester, user_id, key_name)
        await self._store_field(user_id, key_name, None)

    async def _store_field(self, user_id, key_name, value):
        if key_name == "displayname":
            await self._accounts.set_displayname(user_id, value)
        else:
            await self._accounts.set_avatar_url(user_id, value)
        await self._update_memberships(user_id, key_name, value)

    async def _update_memberships(self, user_id, key_name, value):
        """Send a new ``m.room.member`` join event with the changed field to each joined room."""
        memberships = await self._rooms.get_rooms_for_user(user_id, memberships=("join",))
        for membership in memberships:
            room_id = membership.room_id
            state = await self._events.get_current_state(
                room_id, types=[("m.room.member", user_id)]
            )
            current = state.get(("m.room.member", user_id))
            if current is None:
                continue
            content = dict(current.pdu.get("content", {}))
            if content.get("membership") != "join" or content.get(key_name) == value:
                continue
            if value is None:
                content.pop(key_name, None)
            else:
                content[key_name] = value
            try:
                await self._creator.send_event(
                    room_id, user_id, "m.room.member", content, state_key=user_id
                )
            except MatrixError as error:
                self.log.warn(
                    "could not update {user_id}'s membership in {room_id}: {error}",
                    user_id=user_id,
                    room_id=room_id,
                    error=error,
                )
