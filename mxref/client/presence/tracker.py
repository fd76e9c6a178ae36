"""Who is online: each user's presence, kept in memory with a stream position.

Spec (v1.19), Client-Server API, "Presence": a user's presence is ``online``, ``unavailable``
(idle) or ``offline``, with an optional ``status_msg``, the time since they were last active
(``last_active_ago``) and whether they are ``currently_active``; it reaches the users who share
a room with them as ``m.presence`` events in ``/sync``'s ``presence`` section.

mxref's rules for this server's users (the spec leaves the mechanics to servers):

* ``PUT /presence/{userId}/status`` sets the state and message and counts as activity. Such an
  explicit state wins: later syncs do not change it, until the user is timed out (below).
* A ``/sync`` with ``set_presence`` absent or ``online`` brings an ``offline`` user online (and
  counts as activity); ``set_presence=unavailable`` marks an online or offline user
  ``unavailable``; ``set_presence=offline`` changes nothing. Syncs that change nothing do not
  move the stream (the throttle): they only push the sync timeout back.
* Idle: an ``online`` user with no activity for :data:`IDLE_AFTER_SECONDS` (5 minutes) becomes
  ``unavailable``. A sync does not count as activity for a user already online, so a client
  left open goes idle.
* Gone: a user who synced and then made no sync request for the long-poll ``timeout`` plus
  :data:`SYNC_GAP_SECONDS` becomes ``offline`` (and loses any explicit state).

Users of other servers get the states their server pushes (``m.presence`` EDUs), with no timers
here. ``currently_active`` is true for an ``online`` user active within the last
:data:`CURRENTLY_ACTIVE_SECONDS`, or as the remote server said.

Each change advances :attr:`PresenceTracker.position` and notifies the ``"presence"`` stream of
the :class:`~mxref.notifier.Notifier` with the user and the rooms they are joined to, so
``/sync`` long-polls of the users sharing a room wake up and the federation sender passes our
users' changes on.
"""

import attr
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from mxref.errors import MatrixError

#: The notifier stream presence changes are announced on.
PRESENCE_STREAM = "presence"

#: The presence states of the spec.
PRESENCE_STATES = ("online", "unavailable", "offline")

#: Seconds without activity after which an online user becomes unavailable.
IDLE_AFTER_SECONDS = 5 * 60

#: Seconds after the end of a sync's long-poll window without a new sync after which the
#: user is offline.
SYNC_GAP_SECONDS = 30

#: Seconds since the last activity during which an online user is ``currently_active``.
CURRENTLY_ACTIVE_SECONDS = 60


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PresenceState:
    """One user's presence.

    :ivar user_id: whose.
    :ivar presence: ``online``, ``unavailable`` or ``offline``.
    :ivar status_msg: their status message, or ``None``.
    :ivar last_active_ms: when they were last active (ms since the epoch), or ``None``.
    :ivar currently_active: what a remote server said (``None`` for local users: computed).
    :ivar explicit: whether the state was set with ``PUT /presence`` (local users).
    :ivar position: the stream position of the change that made this state.
    """

    user_id: str
    presence: str
    status_msg: object = None
    last_active_ms: object = None
    currently_active: object = None
    explicit: bool = False
    position: int = 0


class PresenceTracker(service.Service):
    """Presence of local and remote users, with idle and sync-gap timers for local ones.

    A service so that the timers live only while the server runs: none is set before
    ``startService`` or after :meth:`stopService`, which cancels them.

    :param clock: an ``IReactorTime`` for the timers and ``last_active_ago``.
    :param notifier: a :class:`~mxref.notifier.Notifier`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore` (the rooms a change is
        announced to).
    """

    log = Logger()

    def __init__(self, clock, notifier, rooms):
        self._clock = clock
        self._notifier = notifier
        self._rooms = rooms
        self._states = {}
        self._idle_timers = {}
        self._gone_timers = {}
        self._position = 0

    def stopService(self):
        """Cancel every idle and sync-gap timer (the states stay as they are)."""
        for timers in (self._idle_timers, self._gone_timers):
            for user_id in list(timers):
                self._cancel(timers, user_id)
        return super().stopService()

    @property
    def position(self) -> int:
        """The presence stream position: how many changes there have been. Not a Deferred."""
        return self._position

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    def get(self, user_id):
        """The user's :class:`PresenceState`, or ``None`` if nothing is known. Not a Deferred."""
        return self._states.get(user_id)

    def changed_since(self, position) -> list:
        """The states changed after stream ``position`` (all known ones for ``0``), oldest
        change first. Not a Deferred."""
        return sorted(
            (s for s in self._states.values() if s.position > position), key=lambda s: s.position
        )

    def content_of(self, state) -> dict:
        """The ``m.presence`` content for a state (``presence``, ``last_active_ago``,
        ``currently_active``, ``status_msg``). Not a Deferred."""
        content = {"presence": state.presence}
        if state.last_active_ms is not None:
            content["last_active_ago"] = max(0, self._now_ms() - state.last_active_ms)
        if state.currently_active is not None:
            content["currently_active"] = state.currently_active
        elif state.last_active_ms is not None:
            content["currently_active"] = (
                state.presence == "online"
                and content["last_active_ago"] < CURRENTLY_ACTIVE_SECONDS * 1000
            )
        if state.status_msg is not None:
            content["status_msg"] = state.status_msg
        return content

    def event_of(self, state) -> dict:
        """The ``m.presence`` event ``/sync`` gives for a state. Not a Deferred."""
        return {"type": "m.presence", "sender": state.user_id, "content": self.content_of(state)}

    # -- local users -----------------------------------------------------------------------------

    def set_explicit(self, user_id, presence, status_msg=None):
        """Record a ``PUT /presence`` of a local user: the state wins over syncs.

        The new state is readable at once; the returned Deferred fires (with ``None``) once
        the change has been announced on the notifier.

        :raises MatrixError: 400 ``M_INVALID_PARAM`` for an unknown state.
        """
        if presence not in PRESENCE_STATES:
            raise MatrixError(400, "M_INVALID_PARAM", f"presence must be one of {PRESENCE_STATES}")
        now_ms = self._now_ms()
        self._cancel(self._idle_timers, user_id)
        if presence == "online":
            self._call_later(self._idle_timers, IDLE_AFTER_SECONDS, self._idle, user_id)
        return self._change(user_id, presence, status_msg, now_ms, explicit=True)

    def record_sync(self, user_id, set_presence=None, timeout_ms=0):
        """Note that a local user started a ``/sync`` with ``set_presence`` (``None`` meaning
        ``online``) and a long-poll ``timeout_ms``; see the module docstring.

        :returns: Deferred firing with ``None`` once any change has been announced.
        """
        set_presence = set_presence or "online"
        if set_presence == "offline":
            return defer.succeed(None)
        gap = max(0, timeout_ms) / 1000.0 + SYNC_GAP_SECONDS
        timer = self._gone_timers.get(user_id)
        if timer is not None and timer.active():
            timer.reset(gap)
        else:
            self._call_later(self._gone_timers, gap, self._gone, user_id)
        state = self._states.get(user_id)
        if state is not None and state.explicit:
            return defer.succeed(None)
        current = state.presence if state is not None else "offline"
        if set_presence == "online" and current == "offline":
            self._call_later(self._idle_timers, IDLE_AFTER_SECONDS, self._idle, user_id)
            status_msg = state.status_msg if state is not None else None
            return self._change(user_id, "online", status_msg, self._now_ms(), explicit=False)
        elif set_presence == "unavailable" and current != "unavailable":
            self._cancel(self._idle_timers, user_id)
            status_msg = state.status_msg if state is not None else None
            last_active = state.last_active_ms if state is not None else self._now_ms()
            return self._change(user_id, "unavailable", status_msg, last_active, explicit=False)
        return defer.succeed(None)

    def _idle(self, user_id):
        self._idle_timers.pop(user_id, None)
        state = self._states.get(user_id)
        if state is not None and state.presence == "online":
            self._change(user_id, "unavailable", state.status_msg, state.last_active_ms, state.explicit)

    def _gone(self, user_id):
        self._gone_timers.pop(user_id, None)
        self._cancel(self._idle_timers, user_id)
        state = self._states.get(user_id)
        if state is not None and state.presence != "offline":
            self._change(user_id, "offline", state.status_msg, state.last_active_ms, explicit=False)

    def _call_later(self, timers, seconds, function, user_id):
        self._cancel(timers, user_id)
        if self.running:
            timers[user_id] = self._clock.callLater(seconds, function, user_id)

    @staticmethod
    def _cancel(timers, user_id):
        timer = timers.pop(user_id, None)
        if timer is not None and timer.active():
            timer.cancel()

    # -- remote users ----------------------------------------------------------------------------

    def set_remote(self, user_id, presence, status_msg=None, last_active_ago=None, currently_active=None,
                   room_ids=None):
        """Record the state another server pushed for one of its users.

        :param last_active_ago: milliseconds, as in the EDU, or ``None``.
        :param room_ids: the rooms to announce the change to (``None``: look them up).
        :returns: Deferred firing with ``None`` once the change has been announced.
        """
        last_active_ms = None if last_active_ago is None else self._now_ms() - last_active_ago
        return self._change(user_id, presence, status_msg, last_active_ms, False, currently_active, room_ids)

    # -- changes ---------------------------------------------------------------------------------

    def _change(self, user_id, presence, status_msg, last_active_ms, explicit, currently_active=None,
                room_ids=None):
        self._position += 1
        position = self._position
        self._states[user_id] = PresenceState(
            user_id, presence, status_msg, last_active_ms, currently_active, explicit, position
        )
        if room_ids is not None:
            self._notifier.notify(PRESENCE_STREAM, position, room_ids=room_ids, user_ids=[user_id])
            return defer.succeed(None)
        d = self._rooms.get_rooms_for_user(user_id)
        d.addCallback(
            lambda memberships: self._notifier.notify(
                PRESENCE_STREAM, position, room_ids=[m.room_id for m in memberships], user_ids=[user_id]
            )
        )
        d.addCallback(lambda _: None)
        d.addErrback(lambda f: self.log.failure("could not announce presence of {user_id}", f, user_id=user_id))
        return d
