"""Rate limits, in Synapse's shapes and with Synapse's defaults.

A client-facing limit is a token bucket: ``burst_count`` actions at once,
refilled at ``per_second`` actions per second. Exceeding it answers
``429 M_LIMIT_EXCEEDED`` with ``retry_after_ms`` (Client-Server API,
"Rate limiting", https://spec.matrix.org/v1.19/client-server-api/#rate-limiting).

``rc_federation`` limits inbound federation requests per origin server:
within ``window_size`` ms, requests beyond ``sleep_limit`` are delayed by
``sleep_delay`` ms, requests beyond ``reject_limit`` are refused, and at most
``concurrent`` are processed at once.
"""

import attrs

from mxref.config.reader import ConfigReader


@attrs.frozen
class RateLimit:
    """A token bucket: ``burst_count`` actions at once, refilled at ``per_second``."""

    per_second: float
    burst_count: float

    @classmethod
    def read(cls, reader: ConfigReader, default: "RateLimit") -> "RateLimit":
        """Read ``{per_second, burst_count}``; missing keys keep ``default``'s values."""
        limit = cls(
            per_second=reader.number("per_second", default.per_second),
            burst_count=reader.number("burst_count", default.burst_count),
        )
        reader.warn_about_unread()
        return limit


@attrs.frozen
class FederationRateLimit:
    """Per-origin limits on inbound federation requests (times in milliseconds)."""

    window_size: int = 1000
    sleep_limit: int = 10
    sleep_delay: int = 500
    reject_limit: int = 50
    concurrent: int = 3


@attrs.frozen
class RateLimitConfig:
    """Every rate limit.

    :ivar rc_message: sending events (messages and state) per user.
    :ivar rc_registration: ``POST /register`` per client IP address.
    :ivar rc_login_address: login attempts per client IP address.
    :ivar rc_login_account: login attempts per account.
    :ivar rc_login_failed_attempts: failed login attempts per account.
    :ivar rc_federation: inbound federation requests per origin server.
    """

    rc_message: RateLimit = RateLimit(0.2, 10)
    rc_registration: RateLimit = RateLimit(0.17, 3)
    rc_login_address: RateLimit = RateLimit(0.003, 5)
    rc_login_account: RateLimit = RateLimit(0.003, 5)
    rc_login_failed_attempts: RateLimit = RateLimit(0.17, 3)
    rc_federation: FederationRateLimit = FederationRateLimit()

    @classmethod
    def read(cls, reader: ConfigReader) -> "RateLimitConfig":
        """Read ``rc_message``, ``rc_registration``, ``rc_login`` and ``rc_federation``."""
        defaults = cls()
        login = reader.section("rc_login")
        config = cls(
            rc_message=RateLimit.read(reader.section("rc_message"), defaults.rc_message),
            rc_registration=RateLimit.read(
                reader.section("rc_registration"), defaults.rc_registration
            ),
            rc_login_address=RateLimit.read(login.section("address"), defaults.rc_login_address),
            rc_login_account=RateLimit.read(login.section("account"), defaults.rc_login_account),
            rc_login_failed_attempts=RateLimit.read(
                login.section("failed_attempts"), defaults.rc_login_failed_attempts
            ),
            rc_federation=_read_federation_limit(reader.section("rc_federation")),
        )
        login.warn_about_unread()
        return config


def _read_federation_limit(reader: ConfigReader) -> FederationRateLimit:
    default = FederationRateLimit()
    limit = FederationRateLimit(
        window_size=reader.integer("window_size", default.window_size, minimum=1),
        sleep_limit=reader.integer("sleep_limit", default.sleep_limit, minimum=0),
        sleep_delay=reader.integer("sleep_delay", default.sleep_delay, minimum=0),
        reject_limit=reader.integer("reject_limit", default.reject_limit, minimum=0),
        concurrent=reader.integer("concurrent", default.concurrent, minimum=1),
    )
    reader.warn_about_unread()
    return limit
