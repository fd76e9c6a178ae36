"""Tests for mxref.notifier: waking sync waiters, timeouts, cancellation and subscribers."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from mxref.notifier import Notification, Notifier


def after(position, stream="events"):
    """A since-token predicate: notifications on ``stream`` past ``position``."""
    return lambda notification: notification.stream_name == stream and notification.position > position


class WaitForTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.notifier = Notifier(self.clock)

    def test_event_in_a_joined_room_wakes_the_waiter(self):
        """A sync waiting on a room returns as soon as an event lands in that room."""
        d = self.notifier.wait_for("@alice:x", ["!room:x"], after(5), timeout_ms=30000)
        self.assertNoResult(d)
        self.notifier.notify("events", 6, room_ids=["!room:x"])
        notification = self.successResultOf(d)
        self.assertEqual(notification, Notification("events", 6, {"!room:x"}, ()))
        self.assertEqual(self.notifier.waiter_count(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_notification_naming_the_user_wakes_the_waiter(self):
        """A notification naming the user (an invite, a to-device message) wakes them even without rooms."""
        d = self.notifier.wait_for("@alice:x", [], after(0, "to_device"), timeout_ms=30000)
        self.notifier.notify("to_device", 1, user_ids=["@alice:x"])
        self.assertEqual(self.successResultOf(d).stream_name, "to_device")

    def test_unrelated_notifications_do_not_wake(self):
        """Events in other rooms or for other users leave the waiter waiting."""
        d = self.notifier.wait_for("@alice:x", ["!room:x"], after(5), timeout_ms=30000)
        self.notifier.notify("events", 6, room_ids=["!other:x"])
        self.notifier.notify("to_device", 3, user_ids=["@bob:x"])
        self.assertNoResult(d)

    def test_predicate_filters(self):
        """A relevant notification the predicate rejects (not past the since token) does not wake."""
        d = self.notifier.wait_for("@alice:x", ["!room:x"], after(10), timeout_ms=30000)
        self.notifier.notify("events", 9, room_ids=["!room:x"])
        self.assertNoResult(d)
        self.notifier.notify("events", 11, room_ids=["!room:x"])
        self.assertEqual(self.successResultOf(d).position, 11)

    def test_timeout_fires_with_none(self):
        """With nothing new, the wait ends with None after timeout_ms, and not before."""
        d = self.notifier.wait_for("@alice:x", ["!room:x"], after(5), timeout_ms=30000)
        self.clock.advance(29.999)
        self.assertNoResult(d)
        self.clock.advance(0.001)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.notifier.waiter_count(), 0)
        self.notifier.notify("events", 6, room_ids=["!room:x"])

    def test_zero_timeout_returns_at_once(self):
        """timeout_ms=0 returns None immediately when nothing relevant is recent."""
        self.assertIsNone(self.successResultOf(
            self.notifier.wait_for("@alice:x", ["!room:x"], after(5), timeout_ms=0)))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_recent_notification_is_not_missed(self):
        """A notification sent just before wait_for (after the database read) still wakes the waiter at once."""
        self.notifier.notify("events", 6, room_ids=["!room:x"])
        d = self.notifier.wait_for("@alice:x", ["!room:x"], after(5), timeout_ms=30000)
        self.assertEqual(self.successResultOf(d).position, 6)
        self.assertEqual(self.notifier.waiter_count(), 0)

    def test_old_history_does_not_wake(self):
        """Recent notifications the client has already seen (not past since) do not wake it."""
        self.notifier.notify("events", 6, room_ids=["!room:x"])
        d = self.notifier.wait_for("@alice:x", ["!room:x"], after(6), timeout_ms=30000)
        self.assertNoResult(d)

    def test_history_is_bounded(self):
        """Only the most recent notifications are remembered."""
        notifier = Notifier(self.clock, history_size=2)
        notifier.notify("events", 1, room_ids=["!a:x"])
        notifier.notify("events", 2, room_ids=["!b:x"])
        notifier.notify("events", 3, room_ids=["!b:x"])
        self.assertNoResult(notifier.wait_for("@u:x", ["!a:x"], after(0), timeout_ms=1000))

    def test_cancel_removes_waiter_and_timer(self):
        """Cancelling a wait (client disconnected) leaves no waiter and no pending timer."""
        d = self.notifier.wait_for("@alice:x", ["!room:x", "!b:x"], after(5), timeout_ms=30000)
        self.assertEqual(self.notifier.waiter_count(), 1)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.notifier.waiter_count(), 0)
        self.assertEqual(self.notifier._waiters_by_room, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.notifier.notify("events", 6, room_ids=["!room:x"])
        self.clock.advance(60)

    def test_many_waiters_same_notification(self):
        """Everyone waiting on a room is woken by one event in it, each exactly once."""
        waits = [self.notifier.wait_for(f"@u{n}:x", ["!room:x"], after(0), 30000) for n in range(5)]
        self.notifier.notify("events", 1, room_ids=["!room:x"], user_ids=["@u0:x"])
        for d in waits:
            self.assertEqual(self.successResultOf(d).position, 1)
        self.assertEqual(self.notifier.waiter_count(), 0)

    def test_waiter_callback_may_wait_again(self):
        """A woken sync may immediately wait again inside its callback without confusing the notifier."""
        second = []

        def wait_again(notification):
            second.append(self.notifier.wait_for("@alice:x", ["!room:x"], after(notification.position), 30000))

        self.notifier.wait_for("@alice:x", ["!room:x"], after(0), 30000).addCallback(wait_again)
        self.notifier.notify("events", 1, room_ids=["!room:x"])
        self.assertNoResult(second[0])
        self.notifier.notify("events", 2, room_ids=["!room:x"])
        self.assertEqual(self.successResultOf(second[0]).position, 2)

    def test_broken_predicate_is_logged_not_raised(self):
        """A predicate that raises is logged; notify carries on and that waiter is not woken."""
        def broken(notification):
            raise RuntimeError("bug")

        d = self.notifier.wait_for("@alice:x", ["!room:x"], broken, 30000)
        other = self.notifier.wait_for("@bob:x", ["!room:x"], after(0), 30000)
        self.notifier.notify("events", 1, room_ids=["!room:x"])
        self.assertNoResult(d)
        self.successResultOf(other)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)


class SubscriberTests(unittest.TestCase):
    def setUp(self):
        self.notifier = Notifier(Clock())

    def test_subscribers_hear_every_notification(self):
        """A subscriber (the federation sender) is told of every notification, in order."""
        heard = []
        self.notifier.subscribe(heard.append)
        self.notifier.notify("events", 1, room_ids=["!a:x"])
        self.notifier.notify("typing", 7, room_ids=["!b:x"])
        self.assertEqual([(n.stream_name, n.position) for n in heard], [("events", 1), ("typing", 7)])

    def test_unsubscribe(self):
        """After unsubscribing, a callback hears nothing more."""
        heard = []
        self.notifier.subscribe(heard.append)
        self.notifier.unsubscribe(heard.append)
        self.notifier.unsubscribe(heard.append)
        self.notifier.notify("events", 1)
        self.assertEqual(heard, [])

    def test_failing_subscriber_does_not_stop_others(self):
        """One subscriber raising is logged; later subscribers and waiters still hear the notification."""
        heard = []

        def broken(notification):
            raise ValueError("subscriber bug")

        self.notifier.subscribe(broken)
        self.notifier.subscribe(heard.append)
        d = self.notifier.wait_for("@alice:x", ["!a:x"], after(0), 1000)
        self.notifier.notify("events", 1, room_ids=["!a:x"])
        self.assertEqual(len(heard), 1)
        self.successResultOf(d)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_current_positions(self):
        """The notifier tracks the highest position seen on each stream."""
        self.assertIsNone(self.notifier.current_position("events"))
        self.notifier.notify("events", 3)
        self.notifier.notify("events", 2)
        self.notifier.notify("typing", 1)
        self.assertEqual(self.notifier.current_position("events"), 3)
        self.assertEqual(self.notifier.current_positions(), {"events": 3, "typing": 1})
