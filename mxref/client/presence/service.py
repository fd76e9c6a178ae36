"""The rules of the presence endpoints: who may set and see whose presence.

Spec (v1.19), Client-Server API, "Presence": ``PUT /presence/{userId}/status`` — "You cannot set
the presence state of another user" (mxref: 403 ``M_FORBIDDEN``); ``GET
/presence/{userId}/status`` answers 403 when "you are not allowed to see this user's presence
status" (mxref: the user shares no room with the requester) and 404 when "there is no presence
state for this user" (mxref: never the case for a user sharing a room, who is ``offline`` until
something else is known). Presence is shared with the users who share a room, so
:meth:`PresenceService.visible_users` is also what ``/sync`` filters its ``presence`` section by.
"""

from twisted.internet import defer

from mxref.errors import MatrixError
from mxref.types import UserID


class PresenceService:
    """Sets and reads presence for the endpoints and ``/sync``.

    :param tracker: the :class:`~mxref.client.presence.tracker.PresenceTracker`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    """

    def __init__(self, tracker, rooms):
        self._tracker = tracker
        self._rooms = rooms

    @property
    def tracker(self):
        """The :class:`~mxref.client.presence.tracker.PresenceTracker` read and written."""
        return self._tracker

    async def set_presence(self, requester, user_id, presence, status_msg=None) -> None:
        """``PUT /presence/{userId}/status`` for the requester's own ``user_id``.

        :raises MatrixError: 400 for a malformed user ID or state, 403 ``M_FORBIDDEN`` for
            another user.
        """
        UserID.parse(user_id)
        if user_id != requester.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "You cannot set the presence of another user")
        await self._tracker.set_explicit(user_id, presence, status_msg)

    async def get_presence(self, requester, user_id) -> dict:
        """``GET /presence/{userId}/status``: the content of the user's ``m.presence``.

        :raises MatrixError: 400 for a malformed user ID, 403 ``M_FORBIDDEN`` if the user
            shares no room with the requester.
        """
        UserID.parse(user_id)
        if user_id != requester.user_id:
            mine = await self._rooms.get_rooms_for_user(requester.user_id)
            theirs = await self._rooms.get_rooms_for_user(user_id)
            if not {m.room_id for m in mine} & {m.room_id for m in theirs}:
                raise MatrixError(403, "M_FORBIDDEN", "You are not allowed to see their presence")
        state = self._tracker.get(user_id)
        if state is None:
            return {"presence": "offline"}
        return self._tracker.content_of(state)

    @defer.inlineCallbacks
    def visible_users(self, user_id, joined_room_ids):
        """The users whose presence ``user_id`` sees: themselves and the joined members of
        ``joined_room_ids`` (the rooms ``user_id`` is joined to).

        :returns: Deferred firing with a ``set`` of user IDs.
        """
        users = {user_id}
        for room_id in sorted(joined_room_ids):
            members = yield self._rooms.get_members(room_id, membership="join")
            users.update(members)
        return users

    @defer.inlineCallbacks
    def events_for(self, user_id, joined_room_ids, since_position):
        """The ``m.presence`` events ``/sync`` sends ``user_id``: the states of the users they
        see that changed after ``since_position`` (``0``: every known state).

        :returns: Deferred firing with a list of event dicts.
        """
        changed = self._tracker.changed_since(since_position)
        if not changed:
            return []
        visible = yield self.visible_users(user_id, joined_room_ids)
        return [self._tracker.event_of(state) for state in changed if state.user_id in visible]
