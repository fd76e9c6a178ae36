"""EDUs received in transactions: routed by ``edu_type`` to the services that apply them.

Spec: Server-Server API, "EDUs", "Typing Notifications", "Receipts", "Presence" and "Server
Access Control Lists" (https://spec.matrix.org/v1.19/server-server-api/):

* ``m.typing`` ``{room_id, user_id, typing}``: the receiving server checks that the user
  belongs to the sending server and is in the room; ignored for an ACL-denied origin.
* ``m.receipt`` ``{room_id: {receipt_type: {user_id: {event_ids, data: {ts, thread_id?}}}}}``:
  all receipts of a room that denies the origin are ignored; each user must belong to the
  origin and be joined to the room.
* ``m.presence`` ``{push: [{user_id, presence, status_msg?, last_active_ago, currently_active?}]}``:
  each user must belong to the origin and be joined to a room one of our users is joined to
  (presence is only shared between users sharing a room); other entries are ignored.
* EDU types nobody registered for are ignored.
"""

import inspect

from twisted.internet import defer
from twisted.logger import Logger

from mxref.client.presence.tracker import PRESENCE_STATES
from mxref.client.receipts.service import RECEIPTS_STREAM
from mxref.types import UserID

#: How long a remote typing notification lasts (the EDU carries no timeout), in ms.
REMOTE_TYPING_TIMEOUT_MS = 30_000


class EduRouter:
    """Hands each EDU to the callback registered for its ``edu_type``."""

    log = Logger()

    def __init__(self):
        self._callbacks = {}

    def register(self, edu_type, callback):
        """Route EDUs of ``edu_type`` to ``callback(origin, content)``, which may return a
        Deferred or be a coroutine function. Replaces any earlier callback for that type. Not a Deferred.
        """
        self._callbacks[edu_type] = callback

    def registered_types(self):
        """The EDU types with a callback, sorted. Not a Deferred."""
        return sorted(self._callbacks)

    @defer.inlineCallbacks
    def route(self, origin, edu):
        """Apply one EDU from ``origin``; failures are logged, never raised.

        :returns: Deferred firing with ``True`` if a callback took it, else ``False``.
        """
        if not isinstance(edu, dict):
            return False
        edu_type = edu.get("edu_type")
        content = edu.get("content")
        callback = self._callbacks.get(edu_type)
        if callback is None or not isinstance(content, dict):
            return False
        try:
            result = callback(origin, content)
            if inspect.iscoroutine(result):
                result = defer.ensureDeferred(result)
            yield result
        except Exception:
            self.log.failure(
                "EDU {edu_type} from {origin} failed", edu_type=edu_type, origin=origin
            )
            return False
        return True


def _user_of_server(user_id, server_name):
    if not isinstance(user_id, str):
        return False
    try:
        return UserID.parse(user_id).server_name == server_name
    except ValueError:
        return False


class TypingEduReceiver:
    """Applies ``m.typing`` EDUs to the :class:`~mxref.client.receipts.typing.TypingTracker`.

    :param tracker: the typing tracker ``/sync`` reads.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param acl_checker: a :class:`~mxref.federation.acl.ServerAclChecker`.
    """

    def __init__(self, tracker, rooms, acl_checker):
        self._tracker = tracker
        self._rooms = rooms
        self._acl = acl_checker

    @defer.inlineCallbacks
    def on_edu(self, origin, content):
        """Record one remote user's typing state.

        :returns: Deferred firing with ``True`` if applied, ``False`` if ignored.
        """
        room_id = content.get("room_id")
        user_id = content.get("user_id")
        typing = content.get("typing")
        if (
            not isinstance(room_id, str)
            or not isinstance(typing, bool)
            or not _user_of_server(user_id, origin)
        ):
            return False
        members = yield self._rooms.get_members(room_id, membership="join")
        if user_id not in members:
            return False
        if not (yield self._acl.is_allowed(room_id, origin)):
            return False
        self._tracker.set_typing(room_id, user_id, typing, REMOTE_TYPING_TIMEOUT_MS)
        return True


class ReceiptEduReceiver:
    """Stores ``m.receipt`` EDUs and wakes the room's ``/sync`` long-polls.

    :param client_data: an :class:`~mxref.storage.interfaces.IClientDataStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param notifier: a :class:`~mxref.notifier.Notifier`.
    :param acl_checker: a :class:`~mxref.federation.acl.ServerAclChecker`.
    :param stream_name: the notifier stream receipts are announced on.
    """

    def __init__(self, client_data, rooms, notifier, acl_checker, stream_name=RECEIPTS_STREAM):
        self._client_data = client_data
        self._rooms = rooms
        self._notifier = notifier
        self._acl = acl_checker
        self._stream_name = stream_name

    @defer.inlineCallbacks
    def on_edu(self, origin, content):
        """Store the receipts of ``origin``'s users in rooms they are joined to.

        :returns: Deferred firing with the number of receipts stored.
        """
        stored = 0
        for room_id, by_type in sorted(content.items()):
            if not isinstance(by_type, dict):
                continue
            if not (yield self._acl.is_allowed(room_id, origin)):
                continue
            members = yield self._rooms.get_members(room_id, membership="join")
            position = None
            for receipt_type, by_user in sorted(by_type.items()):
                if receipt_type != "m.read" or not isinstance(by_user, dict):
                    continue
                for user_id, receipt in sorted(by_user.items()):
                    if not _user_of_server(user_id, origin) or user_id not in members:
                        continue
                    if not isinstance(receipt, dict):
                        continue
                    event_ids = receipt.get("event_ids")
                    data = receipt.get("data") if isinstance(receipt.get("data"), dict) else {}
                    if (
                        not isinstance(event_ids, list)
                        or not event_ids
                        or not isinstance(event_ids[-1], str)
                    ):
                        continue
                    thread_id = data.get("thread_id")
                    if not isinstance(thread_id, str):
                        thread_id = None
                    receipt_data = {k: v for k, v in data.items() if k != "thread_id"}
                    position = yield self._client_data.put_receipt(
                        room_id, receipt_type, user_id, event_ids[-1], receipt_data, thread_id
                    )
                    stored += 1
            if position is not None:
                self._notifier.notify(self._stream_name, position, room_ids=[room_id])
        return stored


class PresenceEduReceiver:
    """Applies ``m.presence`` EDUs to the :class:`~mxref.client.presence.tracker.PresenceTracker`.

    :param tracker: the presence tracker ``/sync`` reads.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param server_name: our server name (whose users must share a room with the pushed users).
    """

    def __init__(self, tracker, rooms, server_name):
        self._tracker = tracker
        self._rooms = rooms
        self._server_name = server_name

    @defer.inlineCallbacks
    def on_edu(self, origin, content):
        """Record the pushed states of ``origin``'s users who share a room with ours.

        :returns: Deferred firing with the number of states recorded.
        """
        push = content.get("push")
        if not isinstance(push, list):
            return 0
        recorded = 0
        for item in push:
            if not isinstance(item, dict) or not _user_of_server(item.get("user_id"), origin):
                continue
            presence = item.get("presence")
            status_msg = item.get("status_msg")
            last_active_ago = item.get("last_active_ago")
            currently_active = item.get("currently_active")
            if presence not in PRESENCE_STATES:
                continue
            if status_msg is not None and not isinstance(status_msg, str):
                continue
            if isinstance(last_active_ago, bool) or not isinstance(last_active_ago, int) or last_active_ago < 0:
                last_active_ago = None
            if not isinstance(currently_active, bool):
                currently_active = None
            user_id = item["user_id"]
            memberships = yield self._rooms.get_rooms_for_user(user_id)
            shared = []
            for membership in memberships:
                hosts = yield self._rooms.get_joined_hosts(membership.room_id)
                if self._server_name in hosts:
                    shared.append(membership.room_id)
            if not shared:
                continue
            yield self._tracker.set_remote(
                user_id, presence, status_msg, last_active_ago, currently_active, room_ids=shared
            )
            recorded += 1
        return recorded
