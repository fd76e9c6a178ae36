"""Tests for mxref.ratelimit: bursts, refill, per-key buckets, the 429 error and config parsing."""

from hypothesis import given, strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite, client_ip
from mxref.ratelimit import (
    DEFAULT_MESSAGE, LimitExceeded, RateLimitSettings, RateLimiter,
)
from tests.http.memory_http import request as http_request


class RateLimiterTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.limiter = RateLimiter(self.clock, per_second=0.5, burst_count=3)

    def test_burst_then_refused(self):
        """A key may act burst_count times at once; the next action is refused with 429 M_LIMIT_EXCEEDED."""
        for _ in range(3):
            self.limiter.check("@alice:x")
        error = self.assertRaises(LimitExceeded, self.limiter.check, "@alice:x")
        self.assertEqual((error.code, error.errcode), (429, "M_LIMIT_EXCEEDED"))
        self.assertEqual(error.to_json()["retry_after_ms"], 2000)

    def test_refill(self):
        """Tokens come back at per_second: after the advertised wait, one more action is allowed."""
        for _ in range(3):
            self.limiter.check("k")
        self.clock.advance(1.0)
        error = self.assertRaises(LimitExceeded, self.limiter.check, "k")
        self.assertEqual(error.retry_after_ms, 1000)
        self.clock.advance(1.0)
        self.limiter.check("k")
        self.assertRaises(LimitExceeded, self.limiter.check, "k")

    def test_refill_caps_at_burst(self):
        """A long quiet period gives back at most burst_count actions."""
        self.limiter.check("k")
        self.clock.advance(3600)
        for _ in range(3):
            self.limiter.check("k")
        self.assertRaises(LimitExceeded, self.limiter.check, "k")

    def test_keys_are_independent(self):
        """One user hitting the limit does not limit another."""
        for _ in range(3):
            self.limiter.check("@alice:x")
        self.assertRaises(LimitExceeded, self.limiter.check, "@alice:x")
        self.limiter.check("@bob:x")

    def test_refused_action_spends_nothing(self):
        """Being refused does not push the retry time further away."""
        for _ in range(3):
            self.limiter.check("k")
        for _ in range(10):
            self.assertEqual(self.limiter.can_do("k"), (False, 2000))
        self.clock.advance(2.0)
        self.assertEqual(self.limiter.can_do("k"), (True, 0))

    def test_can_do_without_update(self):
        """Asking without updating spends no token."""
        for _ in range(5):
            self.assertEqual(self.limiter.can_do("k", update=False), (True, 0))
        for _ in range(3):
            self.limiter.check("k")

    def test_cost(self):
        """An action may cost several tokens."""
        self.limiter.check("k", cost=3)
        allowed, retry_after_ms = self.limiter.can_do("k", cost=2)
        self.assertFalse(allowed)
        self.assertEqual(retry_after_ms, 4000)

    def test_full_buckets_are_forgotten(self):
        """Keys whose buckets refilled completely are dropped, so memory does not grow with past callers."""
        for n in range(100):
            self.limiter.check(f"ip-{n}")
        self.assertEqual(self.limiter.tracked_keys(), 100)
        self.clock.advance(1.0)
        self.assertEqual(self.limiter.tracked_keys(), 100)
        self.clock.advance(1.0)
        self.assertEqual(self.limiter.tracked_keys(), 0)

    def test_pruning_runs_by_itself(self):
        """Without anyone asking, checks made after PRUNE_INTERVAL forget the full buckets."""
        for n in range(10):
            self.limiter.check(f"ip-{n}")
        self.clock.advance(RateLimiter.PRUNE_INTERVAL)
        self.limiter.check("someone-new")
        self.assertEqual(len(self.limiter._buckets), 1)

    def test_bad_settings(self):
        """A zero rate or an empty bucket is a configuration error."""
        self.assertRaises(ValueError, RateLimiter, self.clock, 0, 5)
        self.assertRaises(ValueError, RateLimiter, self.clock, 1, 0)

    @given(st.lists(st.floats(min_value=0, max_value=10), max_size=40))
    def test_never_more_than_rate_allows(self, gaps):
        """Over any run of requests, allowed actions never exceed burst + rate x elapsed time."""
        clock = Clock()
        limiter = RateLimiter(clock, per_second=0.5, burst_count=3)
        allowed = 0
        for gap in gaps:
            clock.advance(gap)
            if limiter.can_do("k")[0]:
                allowed += 1
        self.assertLessEqual(allowed, 3 + 0.5 * clock.seconds() + 1e-9)


class RateLimitSettingsTests(unittest.TestCase):
    def test_synapse_shape(self):
        """A Synapse-style {per_second, burst_count} section is read, missing keys falling back to defaults."""
        self.assertEqual(RateLimitSettings.from_config({"per_second": 1, "burst_count": 20}, DEFAULT_MESSAGE),
                         RateLimitSettings(1.0, 20))
        self.assertEqual(RateLimitSettings.from_config({"burst_count": 20}, DEFAULT_MESSAGE),
                         RateLimitSettings(0.2, 20))
        self.assertEqual(RateLimitSettings.from_config(None, DEFAULT_MESSAGE), DEFAULT_MESSAGE)

    def test_bad_values(self):
        """Negative, zero, non-numeric or boolean values are refused."""
        for section in ({"per_second": 0}, {"per_second": "fast"}, {"burst_count": 0},
                        {"burst_count": True}, ["not", "a", "mapping"]):
            self.assertRaises(ValueError, RateLimitSettings.from_config, section, DEFAULT_MESSAGE)

    def test_limiter_from_settings(self):
        """A limiter built from settings applies them."""
        limiter = RateLimiter.from_settings(Clock(), RateLimitSettings(1.0, 1))
        limiter.check("k")
        self.assertRaises(LimitExceeded, limiter.check, "k")


class RateLimitOverHttpTests(unittest.TestCase):
    def test_429_with_retry_after_header(self):
        """A limited endpoint answers 429 M_LIMIT_EXCEEDED with retry_after_ms and a Retry-After header."""
        clock = MemoryReactorClock()
        limiter = RateLimiter(clock, per_second=0.1, burst_count=1)

        def endpoint(request):
            limiter.check(client_ip(request))
            return 200, {}

        resource = JsonResource()
        resource.register("POST", "/_matrix/client/v3/register", endpoint)
        site = MatrixSite(resource, clock)
        self.assertEqual(http_request(site, "POST", "/_matrix/client/v3/register", {}).code, 200)
        response = http_request(site, "POST", "/_matrix/client/v3/register", {})
        self.assertEqual(response.code, 429)
        self.assertEqual(response.json(), {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests",
                                           "retry_after_ms": 10000})
        self.assertEqual(response.header("Retry-After"), "10")
