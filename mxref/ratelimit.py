"""Token-bucket rate limiting of actions, keyed by user, device or client address.

Each key has a bucket holding up to ``burst_count`` tokens that refills at
``per_second`` tokens a second; an action spends one token (or ``cost``). An
action finding too few tokens is refused with ``429 M_LIMIT_EXCEEDED``, and
the refusal says how long to wait (``retry_after_ms`` in the body; the HTTP
layer adds the ``Retry-After`` header from it).

Settings use Synapse's configuration shapes (``rc_message: {per_second,
burst_count}``, ``rc_login: {address: {...}, account: {...}, failed_attempts:
{...}}``), so a Synapse ``homeserver.yaml`` section reads the same here.

Spec: Client-Server API, "Rate limiting" (homeservers SHOULD rate-limit; ``429``
with ``M_LIMIT_EXCEEDED``; the ``Retry-After`` header, with ``retry_after_ms``
in the body kept for older clients) and the ``M_LIMIT_EXCEEDED`` error code.
"""

import math

import attr

from mxref.errors import MatrixError


class LimitExceeded(MatrixError):
    """``429 M_LIMIT_EXCEEDED``: the caller must wait ``retry_after_ms`` milliseconds before trying again."""

    def __init__(self, retry_after_ms: int):
        super().__init__(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_after_ms)
        self.retry_after_ms = retry_after_ms


@attr.s(frozen=True, slots=True)
class RateLimitSettings:
    """One limit: refill rate (actions per second) and bucket size (actions allowed at once)."""

    per_second = attr.ib(type=float)
    burst_count = attr.ib(type=int)

    @classmethod
    def from_config(cls, section, default: "RateLimitSettings") -> "RateLimitSettings":
        """Read a ``{per_second, burst_count}`` mapping, each key defaulting to ``default``'s.

        :param section: the mapping from the config file, or None when absent.
        :raises ValueError: for a value of the wrong type or out of range.
        """
        if section is None:
            return default
        if not isinstance(section, dict):
            raise ValueError("a rate limit must be a mapping with per_second and burst_count")
        per_second = section.get("per_second", default.per_second)
        burst_count = section.get("burst_count", default.burst_count)
        if isinstance(per_second, bool) or not isinstance(per_second, (int, float)) or per_second <= 0:
            raise ValueError("per_second must be a positive number")
        if isinstance(burst_count, bool) or not isinstance(burst_count, (int, float)) or burst_count < 1:
            raise ValueError("burst_count must be a number of at least 1")
        return cls(float(per_second), int(burst_count))


#: Synapse's defaults for the limits mxref applies.
DEFAULT_MESSAGE = RateLimitSettings(0.2, 10)            # rc_message
DEFAULT_REGISTRATION = RateLimitSettings(0.17, 3)       # rc_registration
DEFAULT_LOGIN_ADDRESS = RateLimitSettings(0.003, 5)     # rc_login.address
DEFAULT_LOGIN_ACCOUNT = RateLimitSettings(0.003, 5)     # rc_login.account
DEFAULT_LOGIN_FAILED = RateLimitSettings(0.17, 3)       # rc_login.failed_attempts
DEFAULT_JOINS_LOCAL = RateLimitSettings(0.1, 10)        # rc_joins.local
DEFAULT_JOINS_REMOTE = RateLimitSettings(0.01, 10)      # rc_joins.remote


@attr.s(slots=True)
class _Bucket:
    tokens = attr.ib(type=float)
    updated = attr.ib(type=float)


class RateLimiter:
    """Token buckets for one kind of action, one bucket per key.

    :param clock: an ``IReactorTime`` (``seconds()`` is the only call made).
    :param per_second: tokens added to each bucket per second.
    :param burst_count: the most tokens a bucket holds, i.e. how many actions
        may happen back to back after a quiet period.
    """

    #: How often, in seconds, buckets that have refilled completely are forgotten.
    PRUNE_INTERVAL = 60.0

    def __init__(self, clock, per_second: float, burst_count: int):
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        if burst_count < 1:
            raise ValueError("burst_count must be at least 1")
        self._clock = clock
        self.per_second = float(per_second)
        self.burst_count = burst_count
        self._buckets = {}
        self._last_prune = clock.seconds()

    @classmethod
    def from_settings(cls, clock, settings: RateLimitSettings) -> "RateLimiter":
        """A limiter for one configured :class:`RateLimitSettings`."""
        return cls(clock, settings.per_second, settings.burst_count)

    def _refilled(self, key, now):
        bucket = self._buckets.get(key)
        if bucket is None:
            return _Bucket(float(self.burst_count), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst_count), bucket.tokens + elapsed * self.per_second)
        bucket.updated = now
        return bucket

    def can_do(self, key, cost: float = 1, update: bool = True):
        """Whether the action may happen now, without raising.

        :param key: whom the limit applies to (a user ID, ``(user, device)``, an IP...).
        :param cost: how many tokens the action spends.
        :param update: spend the tokens if allowed (False only asks).
        :returns: ``(allowed, retry_after_ms)``; ``retry_after_ms`` is 0 when
            allowed. Not a Deferred.
        """
        now = self._clock.seconds()
        self._prune(now)
        bucket = self._refilled(key, now)
        if bucket.tokens >= cost:
            if update:
                bucket.tokens -= cost
                self._buckets[key] = bucket
            return True, 0
        self._buckets[key] = bucket
        wait_seconds = (cost - bucket.tokens) / self.per_second
        return False, max(1, math.ceil(wait_seconds * 1000))

    def check(self, key, cost: float = 1) -> None:
        """Spend ``cost`` tokens for ``key`` or refuse.

        :raises LimitExceeded: ``429 M_LIMIT_EXCEEDED`` with ``retry_after_ms``
            when the bucket holds too few tokens; nothing is spent then.
        """
        allowed, retry_after_ms = self.can_do(key, cost)
        if not allowed:
            raise LimitExceeded(retry_after_ms)

    def tracked_keys(self) -> int:
        """How many keys currently have a bucket (after forgetting full ones)."""
        self._prune(self._clock.seconds(), force=True)
        return len(self._buckets)

    def _prune(self, now, force: bool = False):
        """Forget buckets that have refilled completely: they behave exactly like new ones."""
        if not force and now - self._last_prune < self.PRUNE_INTERVAL:
            return
        self._last_prune = now
        full = [key for key, bucket in self._buckets.items()
                if bucket.tokens + (now - bucket.updated) * self.per_second >= self.burst_count]
        for key in full:
            del self._buckets[key]
