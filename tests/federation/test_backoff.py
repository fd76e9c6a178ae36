"""The sender's pure retry schedule and catch-up decision."""

import random

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.federation.sender.backoff import (
    JITTER,
    MAX_CATCH_UP_EVENTS,
    MAX_CATCH_UP_EVENTS_PER_ROOM,
    MAX_RETRY_MS,
    MIN_RETRY_MS,
    attempts_for_interval,
    is_too_far_behind,
    retry_ceiling_ms,
    retry_delay_ms,
)

attempts = st.integers(min_value=1, max_value=200)
seeds = st.integers(min_value=0, max_value=2**32)


class FixedRandom:
    """An rng whose ``random()`` always returns one value."""

    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


class RetryDelayTests(unittest.TestCase):
    @given(attempts, seeds)
    def test_delay_within_jittered_ceiling(self, attempt, seed):
        """Every delay lies between the attempt's ceiling minus the jitter and the ceiling."""
        ceiling = retry_ceiling_ms(attempt)
        delay = retry_delay_ms(attempt, random.Random(seed))
        self.assertLessEqual(delay, ceiling)
        self.assertGreaterEqual(delay, ceiling * (1 - JITTER) - 1)
        self.assertLessEqual(delay, MAX_RETRY_MS)

    @given(attempts)
    def test_ceiling_monotone_and_capped(self, attempt):
        """The ceiling never shrinks from one attempt to the next and never passes one hour."""
        self.assertLessEqual(retry_ceiling_ms(attempt), retry_ceiling_ms(attempt + 1))
        self.assertLessEqual(retry_ceiling_ms(attempt + 1), MAX_RETRY_MS)

    @given(attempts, seeds, seeds)
    def test_later_attempts_never_wait_less(self, attempt, seed1, seed2):
        """Whatever the jitter, a later attempt waits at least as long as an earlier one,
        until the cap is reached."""
        earlier = retry_delay_ms(attempt, random.Random(seed1))
        later = retry_delay_ms(attempt + 1, random.Random(seed2))
        if retry_ceiling_ms(attempt) < MAX_RETRY_MS:
            self.assertLess(earlier, later + 1)

    def test_first_retry_within_seconds(self):
        """A server that failed once is retried within five seconds."""
        self.assertLessEqual(retry_delay_ms(1, FixedRandom(0.999999)), MIN_RETRY_MS)
        self.assertEqual(retry_delay_ms(1, FixedRandom(0.0)), MIN_RETRY_MS - MIN_RETRY_MS * JITTER)
        self.assertEqual(retry_ceiling_ms(2), 2 * MIN_RETRY_MS)

    def test_cap_is_one_hour(self):
        """After many failures the delay is at most one hour."""
        self.assertEqual(retry_ceiling_ms(50), 3_600_000)
        self.assertEqual(retry_delay_ms(50, FixedRandom(0.999999)), 3_600_000)

    def test_attempt_zero_refused(self):
        """Attempts are counted from one."""
        self.assertRaises(ValueError, retry_ceiling_ms, 0)

    @given(attempts, seeds)
    def test_stored_interval_gives_back_attempt(self, attempt, seed):
        """The attempt number recovered from a stored delay is the one that produced it
        (attempts past the cap all map to the first capped attempt)."""
        delay = retry_delay_ms(attempt, random.Random(seed))
        recovered = attempts_for_interval(delay)
        self.assertEqual(retry_ceiling_ms(recovered), retry_ceiling_ms(attempt))
        self.assertLessEqual(recovered, attempt)

    def test_healthy_interval_is_attempt_zero(self):
        """A destination with no back-off is at attempt 0."""
        self.assertEqual(attempts_for_interval(0), 0)


class TooFarBehindTests(unittest.TestCase):
    def test_few_events_sent_in_full(self):
        """A few missed events in a few rooms are all sent."""
        self.assertFalse(is_too_far_behind({"!a": 3, "!b": MAX_CATCH_UP_EVENTS_PER_ROOM}, False))

    def test_truncated_room(self):
        """A room with more missed events than were read means too far behind."""
        self.assertTrue(is_too_far_behind({"!a": 1}, True))

    def test_one_busy_room(self):
        """One room over the per-room limit means too far behind."""
        self.assertTrue(is_too_far_behind({"!a": MAX_CATCH_UP_EVENTS_PER_ROOM + 1}, False))

    @given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, MAX_CATCH_UP_EVENTS_PER_ROOM), max_size=30))
    def test_total_limit(self, counts):
        """With every room under its limit, the decision is the total against the overall limit."""
        self.assertEqual(is_too_far_behind(counts, False), sum(counts.values()) > MAX_CATCH_UP_EVENTS)
