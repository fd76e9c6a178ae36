"""A lock per key (room ID), so that a room's events are created and persisted one at a time
while different rooms proceed concurrently."""

from twisted.internet.defer import DeferredLock


class KeyedLock:
    """Serialise work per key.

    ``run(key, f, *args)`` runs ``f`` (which may return a Deferred) once every earlier ``run``
    for the same key has finished, and returns a Deferred of its result. Locks for idle keys
    are dropped, so the map does not grow with the number of rooms ever seen.
    """

    def __init__(self):
        self._locks = {}  # key -> [DeferredLock, number of users]

    def run(self, key, f, *args, **kwargs):
        """Run ``f(*args, **kwargs)`` under the lock for ``key``; returns a Deferred."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = [DeferredLock(), 0]
        entry[1] += 1

        def release(result):
            entry[1] -= 1
            if entry[1] == 0 and self._locks.get(key) is entry:
                del self._locks[key]
            return result

        d = entry[0].run(f, *args, **kwargs)
        d.addBoth(release)
        return d

    def is_locked(self, key) -> bool:
        """Whether some work for ``key`` is running or queued."""
        return key in self._locks
