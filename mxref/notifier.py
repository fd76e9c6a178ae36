"""Fan-out of "stream position N reached": wakes long-polling waiters and tells in-process subscribers.

Services call :meth:`Notifier.notify` after they persist something on a
stream (``"events"``, ``"typing"``, ``"to_device"``, ``"account_data"``...),
naming the rooms and users it concerns. Two kinds of listeners hear it:

- waiters (``GET /sync`` long-polls): :meth:`Notifier.wait_for` returns a
  Deferred that fires with the first relevant notification, or with ``None``
  when the timeout passes. Relevance is decided in two steps: the
  notification must name the waiter's user or one of its rooms, and the
  caller's predicate must accept it (typically: its position is past the
  client's ``since`` token).
- subscribers (the federation sender, modules): :meth:`Notifier.subscribe`
  registers a callable that gets every notification synchronously.

The notifier remembers the most recent notifications, so a waiter that
registers just after a relevant notification (between reading the database
and calling :meth:`Notifier.wait_for`) is woken at once instead of missing it.

Spec: Client-Server API, ``GET /_matrix/client/v3/sync`` (``timeout``: "the
maximum time to wait, in milliseconds, before returning this request"; the
server returns as soon as there is something new for the client).
"""

from collections import deque

import attr
from twisted.internet import defer
from twisted.logger import Logger


@attr.s(frozen=True, slots=True)
class Notification:
    """One "stream position reached" message.

    :ivar stream_name: which stream moved (``"events"``, ``"typing"``...).
    :ivar position: the stream position now reached.
    :ivar room_ids: the rooms the new data belongs to.
    :ivar user_ids: the users it concerns directly (invitees, to-device
        recipients, account data owners...).
    """

    stream_name = attr.ib(type=str)
    position = attr.ib()
    room_ids = attr.ib(converter=frozenset, factory=frozenset)
    user_ids = attr.ib(converter=frozenset, factory=frozenset)

    def concerns(self, user_id: str, room_ids) -> bool:
        """Whether this names ``user_id`` or any of ``room_ids``."""
        return user_id in self.user_ids or not self.room_ids.isdisjoint(room_ids)


class _Waiter:
    """One pending :meth:`Notifier.wait_for` call."""

    __slots__ = ("user_id", "room_ids", "predicate", "deferred", "timer")

    def __init__(self, user_id, room_ids, predicate):
        self.user_id = user_id
        self.room_ids = frozenset(room_ids)
        self.predicate = predicate
        self.deferred = None
        self.timer = None


class Notifier:
    """Delivers stream notifications to waiters and subscribers.

    :param clock: an ``IReactorTime`` for the timeouts.
    :param history_size: how many recent notifications are kept so a waiter
        registering late still sees them.
    """

    _log = Logger()

    def __init__(self, clock, history_size: int = 1000):
        self._clock = clock
        self._positions = {}
        self._history = deque(maxlen=history_size)
        self._subscribers = []
        self._waiters_by_user = {}
        self._waiters_by_room = {}

    def current_position(self, stream_name: str):
        """The highest position notified on a stream so far, or None if none was."""
        return self._positions.get(stream_name)

    def current_positions(self) -> dict:
        """A copy of every stream's highest notified position."""
        return dict(self._positions)

    def notify(self, stream_name: str, position, room_ids=(), user_ids=()) -> Notification:
        """Announce that ``stream_name`` reached ``position``.

        Subscribers are called first, in subscription order (an exception in
        one is logged and does not stop the others); then every waiter the
        notification concerns and whose predicate accepts it is woken.

        :param stream_name: the stream that moved.
        :param position: its new position (any value the stream's readers
            compare; normally an int).
        :param room_ids: the rooms concerned.
        :param user_ids: the users concerned directly.
        :returns: the :class:`Notification` sent (not a Deferred).
        """
        notification = Notification(stream_name, position, room_ids, user_ids)
        known = self._positions.get(stream_name)
        if known is None or position > known:
            self._positions[stream_name] = position
        self._history.append(notification)

        for subscriber in list(self._subscribers):
            try:
                subscriber(notification)
            except Exception:
                self._log.failure("notifier subscriber {subscriber!r} failed", subscriber=subscriber)

        candidates = set()
        for user_id in notification.user_ids:
            candidates.update(self._waiters_by_user.get(user_id, ()))
        for room_id in notification.room_ids:
            candidates.update(self._waiters_by_room.get(room_id, ()))
        woken = [waiter for waiter in candidates if self._accepts(waiter, notification)]
        for waiter in woken:
            self._forget(waiter)
        for waiter in woken:
            waiter.deferred.callback(notification)
        return notification

    def _accepts(self, waiter, notification) -> bool:
        try:
            return bool(waiter.predicate(notification))
        except Exception:
            self._log.failure("waiter predicate for {user_id} failed", user_id=waiter.user_id)
            return False

    def wait_for(self, user_id: str, room_ids, since_token_predicate, timeout_ms: int):
        """Wait until something relevant to ``user_id`` happens, or the timeout passes.

        :param user_id: the waiting user; notifications naming them are relevant.
        :param room_ids: the rooms the user is in (or otherwise follows);
            notifications naming any of them are relevant.
        :param since_token_predicate: ``predicate(notification) -> bool``; a
            relevant notification wakes the waiter only if this accepts it
            (for ``/sync``: is it past the client's ``since`` token).
        :param timeout_ms: how long to wait; 0 only checks recent notifications.
        :returns: a Deferred firing with the waking :class:`Notification`, or
            ``None`` on timeout. Cancelling it removes the waiter.
        """
        waiter = _Waiter(user_id, room_ids, since_token_predicate)
        for notification in reversed(self._history):
            if notification.concerns(user_id, waiter.room_ids) and self._accepts(waiter, notification):
                return defer.succeed(notification)
        if timeout_ms <= 0:
            return defer.succeed(None)

        waiter.deferred = defer.Deferred(lambda _: self._forget(waiter))
        waiter.timer = self._clock.callLater(timeout_ms / 1000.0, self._time_out, waiter)
        self._waiters_by_user.setdefault(user_id, set()).add(waiter)
        for room_id in waiter.room_ids:
            self._waiters_by_room.setdefault(room_id, set()).add(waiter)
        return waiter.deferred

    def _time_out(self, waiter):
        waiter.timer = None
        self._forget(waiter)
        waiter.deferred.callback(None)

    def _forget(self, waiter):
        """Remove a waiter from the indexes and stop its timer."""
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        self._discard(self._waiters_by_user, waiter.user_id, waiter)
        for room_id in waiter.room_ids:
            self._discard(self._waiters_by_room, room_id, waiter)

    @staticmethod
    def _discard(index, key, waiter):
        waiters = index.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del index[key]

    def waiter_count(self) -> int:
        """How many wait_for calls are pending."""
        return sum(len(waiters) for waiters in self._waiters_by_user.values())

    def subscribe(self, callback) -> None:
        """Call ``callback(notification)`` for every notification from now on (synchronously, inside notify)."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback) -> None:
        """Stop calling a subscribed callback (no error if it was not subscribed)."""
        if callback in self._subscribers:
            self._subscribers.remove(callback)
