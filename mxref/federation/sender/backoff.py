"""Pure decisions of the outbound federation sender: how long to wait before retrying an
unreachable server, and when a server that was away is too far behind to be sent everything
it missed.

The spec asks senders to retry (a transaction "must" get a 200 before the next one is sent)
but leaves the schedule to implementations (Server-Server API, "Transactions",
https://spec.matrix.org/v1.19/server-server-api/#transactions). mxref uses exponential
back-off with jitter:

* the first retry comes after :data:`MIN_RETRY_MS` (5 s) at most, so a server that blinked
  is caught up within seconds;
* each further failure doubles the ceiling, up to :data:`MAX_RETRY_MS` (one hour), so a dead
  server costs one request an hour;
* the actual delay is drawn in ``[ceiling * (1 - JITTER), ceiling]``, so that the servers
  that all lost the same peer do not retry in lock-step.

Catching up: a server that comes back is sent the events it missed (oldest first) when they
are few; otherwise only the newest event of each room, and it fetches the gap itself with
``POST /get_missing_events`` ("Backfilling and retrieving missing events").

Nothing here does I/O or returns a Deferred.
"""

#: The ceiling of the first retry delay, in milliseconds.
MIN_RETRY_MS = 5_000

#: The largest retry delay, in milliseconds (one hour).
MAX_RETRY_MS = 3_600_000

#: Each failure multiplies the ceiling by this.
RETRY_MULTIPLIER = 2

#: The fraction of the ceiling the jitter may take off.
JITTER = 0.25

#: A room with more missed events than this is caught up with its newest event only.
MAX_CATCH_UP_EVENTS_PER_ROOM = 50

#: More missed events than this over all rooms: newest event per room only.
MAX_CATCH_UP_EVENTS = 250


def retry_ceiling_ms(attempt: int) -> int:
    """The largest delay before retry number ``attempt`` (1 for the first retry), in ms:
    ``MIN_RETRY_MS * RETRY_MULTIPLIER ** (attempt - 1)`` capped at :data:`MAX_RETRY_MS`.

    :raises ValueError: for an attempt below 1.
    """
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    ceiling = MIN_RETRY_MS
    for _ in range(attempt - 1):
        ceiling *= RETRY_MULTIPLIER
        if ceiling >= MAX_RETRY_MS:
            return MAX_RETRY_MS
    return ceiling


def retry_delay_ms(attempt: int, rng) -> int:
    """How long to wait before retry number ``attempt`` (1 after the first failure), in ms.

    :param rng: a ``random.Random``-like object; only ``rng.random()`` is used.
    :returns: an int between ``retry_ceiling_ms(attempt) * (1 - JITTER)`` and
        ``retry_ceiling_ms(attempt)``.
    """
    ceiling = retry_ceiling_ms(attempt)
    floor = ceiling - int(ceiling * JITTER)
    return floor + int(rng.random() * (ceiling - floor + 1))


def attempts_for_interval(interval_ms: int) -> int:
    """The attempt number a stored retry interval belongs to, so that a restarted server
    resumes the schedule where it was: the smallest attempt whose ceiling is at least
    ``interval_ms``; 0 for a healthy destination (interval 0).

    Exact for every delay :func:`retry_delay_ms` returns, because the jitter never takes a
    delay below the previous attempt's ceiling.
    """
    if interval_ms <= 0:
        return 0
    attempt = 1
    while retry_ceiling_ms(attempt) < interval_ms and retry_ceiling_ms(attempt) < MAX_RETRY_MS:
        attempt += 1
    return attempt


def is_too_far_behind(missed_per_room, any_room_truncated: bool) -> bool:
    """Whether a destination back from an outage should be sent only the newest event of
    each room rather than everything it missed.

    :param missed_per_room: ``{room_id: number of our events it missed}`` (as far as read).
    :param any_room_truncated: whether more events exist in some room than were read (the
        read is limited to :data:`MAX_CATCH_UP_EVENTS_PER_ROOM` per room).
    """
    if any_room_truncated:
        return True
    counts = list(missed_per_room.values())
    return any(n > MAX_CATCH_UP_EVENTS_PER_ROOM for n in counts) or sum(counts) > MAX_CATCH_UP_EVENTS
