"""Who is typing in each room, kept in memory with timeouts.

Spec (v1.19), Client-Server API, "Typing Notifications": a client sends ``PUT
/rooms/{roomId}/typing/{userId}`` with ``typing`` and (when typing) a ``timeout`` in
milliseconds, after which the server stops reporting the user as typing; the server
delivers the ``m.typing`` EDU (``content.user_ids``) to room members in ``/sync``'s
``ephemeral`` section.

:class:`TypingTracker` is that state for this server's users. Each change (start, stop,
timeout) advances a stream position and notifies the ``"typing"`` stream of the
:class:`~mxref.notifier.Notifier` with the room, so ``/sync`` long-polls wake up; ``/sync``
reads the current typers with :meth:`TypingTracker.typing_in` (or the whole event with
:meth:`TypingTracker.typing_event`) and can tell whether a room changed since a position with
:meth:`TypingTracker.changed_since`.
"""

from twisted.application.service import Service

from mxref.errors import MatrixError

#: The notifier stream typing changes are announced on.
TYPING_STREAM = "typing"

#: The timeout used when a client says it is typing without giving one (milliseconds).
DEFAULT_TYPING_TIMEOUT_MS = 30_000

#: The longest typing timeout honoured (milliseconds); longer ones are shortened.
MAX_TYPING_TIMEOUT_MS = 120_000


class TypingTracker(Service):
    """Typing users per room, forgotten when their timeout passes.

    A service: stopping it cancels the pending timeouts (typing state lives only while the
    process runs).

    :param clock: an ``IReactorTime`` for the timeouts.
    :param notifier: a :class:`~mxref.notifier.Notifier`.
    """

    def __init__(self, clock, notifier):
        self._clock = clock
        self._notifier = notifier
        self._timers = {}
        self._typing = {}
        self._position = 0
        self._room_positions = {}

    def stopService(self):
        """Cancel every pending typing timeout."""
        Service.stopService(self)
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    @property
    def position(self) -> int:
        """The typing stream position: how many changes there have been. Not a Deferred."""
        return self._position

    def typing_in(self, room_id) -> list:
        """The user IDs currently typing in ``room_id``, sorted. Not a Deferred."""
        return sorted(self._typing.get(room_id, ()))

    def typing_event(self, room_id) -> dict:
        """The ``m.typing`` ephemeral event ``/sync`` gives for ``room_id`` (``content.user_ids``
        lists the current typers, possibly none). Not a Deferred."""
        return {"type": "m.typing", "content": {"user_ids": self.typing_in(room_id)}}

    def changed_since(self, room_id, position) -> bool:
        """Whether the typers of ``room_id`` changed after stream ``position``. Not a Deferred."""
        return self._room_positions.get(room_id, 0) > position

    def set_typing(self, room_id, user_id, typing, timeout_ms=None) -> None:
        """Record that ``user_id`` started (for ``timeout_ms``) or stopped typing in ``room_id``.

        Starting again while typing only extends the timeout. Not a Deferred.

        :raises MatrixError: 400 ``M_INVALID_PARAM`` for a negative timeout.
        """
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()
        typers = self._typing.setdefault(room_id, set())
        if typing:
            if timeout_ms is None:
                timeout_ms = DEFAULT_TYPING_TIMEOUT_MS
            if timeout_ms < 0:
                raise MatrixError(400, "M_INVALID_PARAM", "timeout must not be negative")
            timeout_ms = min(timeout_ms, MAX_TYPING_TIMEOUT_MS)
            self._timers[key] = self._clock.callLater(
                timeout_ms / 1000.0, self._expire, room_id, user_id
            )
            if user_id not in typers:
                typers.add(user_id)
                self._changed(room_id)
        elif user_id in typers:
            typers.discard(user_id)
            self._changed(room_id)
        if not typers:
            self._typing.pop(room_id, None)

    def _expire(self, room_id, user_id):
        self._timers.pop((room_id, user_id), None)
        typers = self._typing.get(room_id)
        if typers is not None and user_id in typers:
            typers.discard(user_id)
            if not typers:
                del self._typing[room_id]
            self._changed(room_id)

    def _changed(self, room_id):
        self._position += 1
        self._room_positions[room_id] = self._position
        self._notifier.notify(TYPING_STREAM, self._position, room_ids=[room_id])
