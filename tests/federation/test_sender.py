"""The federation sender: our events and EDUs reach the room's other servers in transactions
of at most 50 PDUs and 100 EDUs, one at a time per server, with back-off and catch-up from
the stored stream (surviving a restart)."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.client.receipts.service import RECEIPTS_STREAM
from mxref.client.receipts.typing import TypingTracker
from mxref.events.hashing import compute_event_id
from mxref.events.signing import get_verify_key, key_id_of
from mxref.federation.sender.backoff import JITTER, MIN_RETRY_MS
from mxref.federation.sender.sender import FederationSender
from mxref.federation.transport.client import HttpResponseError, RequestFailed
from mxref.storage.records import RoomPosition
from tests.federation.receiver_support import REMOTE, ReceiverFixture, RemoteRoom

OTHER = "other.example"
START = 1_700_000_000.0


class LowRandom:
    """Jitter that always takes the most off: delays are exactly ``ceiling * (1 - JITTER)``."""

    def random(self):
        return 0.0


def delay_s(attempt):
    """The delay before retry ``attempt`` with :class:`LowRandom`, in seconds."""
    ceiling = MIN_RETRY_MS * 2 ** (attempt - 1)
    return (ceiling - int(ceiling * JITTER)) / 1000.0


class RecordingClient:
    """A federation client that records transactions; destinations can be down (fail at
    once), refusing (answer 500) or held (the answer waits until released)."""

    def __init__(self):
        self.transactions = []
        self.down = set()
        self.refusing = set()
        self.held = set()
        self._waiting = []

    def send_transaction(self, destination, txn_id, pdus, edus):
        self.transactions.append((destination, txn_id, list(pdus), list(edus)))
        if destination in self.down:
            return defer.fail(RequestFailed(f"could not connect to {destination}"))
        if destination in self.refusing:
            return defer.fail(HttpResponseError(500, "M_UNKNOWN", {}))
        if destination in self.held:
            d = defer.Deferred()
            self._waiting.append((destination, d))
            return d
        return defer.succeed({"pdus": {}})

    def release(self, destination):
        """Answer every held transaction to ``destination`` and stop holding."""
        self.held.discard(destination)
        waiting = [d for dest, d in self._waiting if dest == destination]
        self._waiting = [(dest, d) for dest, d in self._waiting if dest != destination]
        for d in waiting:
            d.callback({"pdus": {}})

    def fail_held(self, destination):
        """Fail every held transaction to ``destination`` and stop holding."""
        self.held.discard(destination)
        waiting = [d for dest, d in self._waiting if dest == destination]
        self._waiting = [(dest, d) for dest, d in self._waiting if dest != destination]
        for d in waiting:
            d.errback(RequestFailed(f"timed out talking to {destination}"))

    def to(self, destination):
        """The transactions sent to ``destination``: ``[(txn_id, pdus, edus)]``."""
        return [(txn_id, pdus, edus) for dest, txn_id, pdus, edus in self.transactions if dest == destination]


class FlakyFederationStore:
    """An IFederationStore whose ``get_destination`` fails a given number of times."""

    def __init__(self, store, failures):
        self._store = store
        self.failures = failures

    def get_destination(self, destination):
        if self.failures:
            self.failures -= 1
            return defer.fail(RuntimeError("database unavailable"))
        return self._store.get_destination(destination)

    def __getattr__(self, name):
        return getattr(self._store, name)


class SenderFixture(ReceiverFixture):
    """Our room with local alice and remote bob (remote.example) joined, and a started
    :class:`FederationSender` on a fake clock."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        outcome = yield self.join_bob()
        self.assertEqual(outcome.status, "accepted")
        self.clock = task.Clock()
        self.clock.advance(START)
        self.fed_client = RecordingClient()
        self.typing = TypingTracker(self.clock, self.notifier)
        self.sender = yield self.start_sender()

    @defer.inlineCallbacks
    def start_sender(self, clock=None, client=None, federation_store=None):
        sender = FederationSender(
            self.store.events, self.store.rooms, federation_store or self.store.federation, self.store.client_data,
            client or self.fed_client, self.notifier, self.typing, clock or self.clock, self.server_name,
            rng=LowRandom(),
        )
        yield sender.startService()
        self.addCleanup(sender.stopService)
        return sender

    @defer.inlineCallbacks
    def say(self, count, prefix="message", wait_for=None):
        """Alice sends ``count`` messages; returns their event IDs in order.

        :param wait_for: the destinations whose queues to wait for (default: all).
        """
        ids = []
        for i in range(count):
            event_id, _ = yield self.creator.send_event(
                self.room_id, self.alice, "m.room.message", {"msgtype": "m.text", "body": f"{prefix} {i}"}
            )
            ids.append(event_id)
        yield self.sender.idle(wait_for)
        return ids

    def event_ids(self, pdus):
        return [compute_event_id(p, self.room_version) for p in pdus]

    def sent_ids(self, destination):
        return [i for _txn, pdus, _edus in self.fed_client.to(destination) for i in self.event_ids(pdus)]

    @defer.inlineCallbacks
    def advance(self, seconds):
        """Move the fake clock on and wait for the queues to settle."""
        self.clock.advance(seconds)
        yield self.sender.idle()

    @defer.inlineCallbacks
    def join_other_server(self):
        """A user of a second remote server (other.example) joins the room."""
        other = RemoteRoom(self.room_id, self.room_version, server_name=OTHER)
        chunk = yield self.store.events.get_room_events_stream(self.room_id, RoomPosition(0, 0), None, 1000, "f")
        for stored in chunk:
            prevs = stored.prev_event_ids
            other.add(stored.event_id, stored.pdu, other.state_after[prevs[0]] if prevs else {})
        self.keyring.keys[OTHER] = {key_id_of(other.signing_key): get_verify_key(other.signing_key)}
        carol = f"@carol:{OTHER}"
        _event_id, pdu = other.build(carol, "m.room.member", {"membership": "join"}, state_key=carol)
        outcome = yield self.receiver.receive_pdu(OTHER, pdu)
        self.assertEqual(outcome.status, "accepted")
        yield self.sender.idle()
        return other


class SendingTests(SenderFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_our_event_reaches_the_other_server(self):
        """A message alice sends goes to remote.example in a transaction, without event_id."""
        [event_id] = yield self.say(1)
        [(txn_id, pdus, edus)] = self.fed_client.to(REMOTE)
        self.assertEqual(self.event_ids(pdus), [event_id])
        self.assertNotIn("event_id", pdus[0])
        self.assertNotIn("unsigned", pdus[0])
        self.assertEqual(edus, [])
        self.assertTrue(txn_id.startswith(f"{int(START * 1000)}_"))
        self.assertEqual([d for d, *_ in self.fed_client.transactions], [REMOTE])

    @defer.inlineCallbacks
    def test_remote_events_are_not_sent(self):
        """An event bob's server sent us is not sent back out by us."""
        _event_id, pdu = self.remote.build(self.bob, "m.room.message", {"msgtype": "m.text", "body": "hi"})
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, "accepted")
        yield self.sender.idle()
        self.assertEqual(self.fed_client.transactions, [])

    @defer.inlineCallbacks
    def test_batching_and_one_transaction_in_flight(self):
        """While a transaction is unanswered nothing else is sent; the 119 events queued
        meanwhile then go in transactions of 50, 50 and 19, in order."""
        self.fed_client.held.add(REMOTE)
        ids = yield self.say(120, wait_for=())
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)
        self.fed_client.release(REMOTE)
        yield self.sender.idle()
        sizes = [len(pdus) for _txn, pdus, _edus in self.fed_client.to(REMOTE)]
        self.assertEqual(sizes, [1, 50, 50, 19])
        self.assertEqual(self.sent_ids(REMOTE), ids)
        txn_ids = [txn for txn, _p, _e in self.fed_client.to(REMOTE)]
        self.assertEqual(len(set(txn_ids)), 4)
        record = yield self.store.federation.get_destination(REMOTE)
        stored = yield self.store.events.get_event(ids[-1])
        self.assertEqual(record.last_successful_stream_ordering, stored.stream_ordering)

    @defer.inlineCallbacks
    def test_kicked_server_is_told(self):
        """When alice kicks bob, bob's server (no longer in the room) receives the kick."""
        yield self.membership.set_membership_of_other(self.alice, self.room_id, self.bob, "leave")
        yield self.sender.idle()
        [(_txn, pdus, _edus)] = self.fed_client.to(REMOTE)
        self.assertEqual(pdus[0]["content"]["membership"], "leave")
        yield self.say(1)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)

    @defer.inlineCallbacks
    def test_dead_destination_does_not_delay_another(self):
        """With remote.example not answering at all, other.example still gets every event at once."""
        yield self.join_other_server()
        self.fed_client.held.add(REMOTE)
        ids = yield self.say(3, wait_for=(OTHER,))
        self.assertEqual(self.sent_ids(OTHER), ids)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)

    @defer.inlineCallbacks
    def test_join_accepted_as_resident_is_passed_on(self):
        """A join bob's server sent us with send_join is passed on to other.example, not back
        to remote.example."""
        yield self.join_other_server()
        event_id, pdu = self.remote.build(self.bob, "m.room.member", {"membership": "join", "displayname": "Bob"},
                                          state_key=self.bob)
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, "accepted")
        yield self.sender.send_on_behalf_of(REMOTE, event_id)
        yield self.sender.idle()
        self.assertEqual(self.sent_ids(OTHER), [event_id])
        self.assertEqual(self.fed_client.to(REMOTE), [])


class BackoffTests(SenderFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_failure_backs_off_on_schedule(self):
        """Each failed attempt waits longer (5 s, 10 s, 20 s ceilings); the schedule and the
        start of the outage are stored."""
        self.fed_client.down.add(REMOTE)
        yield self.say(1)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)
        record = yield self.store.federation.get_destination(REMOTE)
        self.assertEqual(record.retry_interval, delay_s(1) * 1000)
        self.assertEqual(record.failure_ts, START * 1000)

        yield self.advance(delay_s(1) - 0.01)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)
        yield self.advance(0.01)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 2)
        record = yield self.store.federation.get_destination(REMOTE)
        self.assertEqual(record.retry_interval, delay_s(2) * 1000)
        self.assertEqual(record.failure_ts, START * 1000)

        yield self.advance(delay_s(2) - 0.01)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 2)
        yield self.advance(0.01)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 3)
        self.assertEqual(self.sender.queue(REMOTE).retry_interval_ms, delay_s(3) * 1000)

    @defer.inlineCallbacks
    def test_events_during_backoff_wait_then_go_oldest_first(self):
        """Events sent while a server is down are not attempted before the retry time; then
        they all go in one transaction, oldest first, and the back-off is cleared."""
        self.fed_client.refusing.add(REMOTE)
        ids = yield self.say(5)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)
        self.fed_client.refusing.discard(REMOTE)
        yield self.advance(delay_s(1))
        _txn, pdus, _edus = self.fed_client.to(REMOTE)[-1]
        self.assertEqual(self.event_ids(pdus), ids)
        record = yield self.store.federation.get_destination(REMOTE)
        self.assertEqual((record.retry_interval, record.failure_ts), (0, None))
        self.assertFalse(self.sender.queue(REMOTE).is_catching_up)
        more = yield self.say(1)
        self.assertEqual(self.event_ids(self.fed_client.to(REMOTE)[-1][1]), more)

    @defer.inlineCallbacks
    def test_inbound_traffic_resets_backoff(self):
        """When the backed-off server contacts us, what waits for it is sent at once."""
        self.fed_client.down.add(REMOTE)
        ids = yield self.say(2)
        self.fed_client.down.discard(REMOTE)
        self.sender.wake_destination(REMOTE)
        yield self.sender.idle()
        self.assertEqual(self.event_ids(self.fed_client.to(REMOTE)[-1][1]), ids)
        self.assertEqual(self.sender.queue(REMOTE).retry_interval_ms, 0)

    @defer.inlineCallbacks
    def test_kick_during_outage_delivered(self):
        """A server whose last user was kicked while it was unreachable still receives the
        kick when it comes back."""
        self.fed_client.down.add(REMOTE)
        [before] = yield self.say(1)
        kick_id = yield self.membership.set_membership_of_other(self.alice, self.room_id, self.bob, "leave")
        yield self.say(1)
        yield self.sender.idle()
        self.fed_client.down.discard(REMOTE)
        yield self.advance(delay_s(1))
        _txn, pdus, _edus = self.fed_client.to(REMOTE)[-1]
        self.assertEqual(self.event_ids(pdus), [before, kick_id])

    @defer.inlineCallbacks
    def test_too_far_behind_gets_newest_event_only(self):
        """A server that missed more than 50 events of a room is sent only the newest; it
        fetches the rest with get_missing_events."""
        self.fed_client.down.add(REMOTE)
        ids = yield self.say(60)
        self.fed_client.down.discard(REMOTE)
        yield self.advance(delay_s(1))
        _txn, pdus, _edus = self.fed_client.to(REMOTE)[-1]
        self.assertEqual(self.event_ids(pdus), [ids[-1]])
        record = yield self.store.federation.get_destination(REMOTE)
        upto = yield self.store.events.get_max_stream_ordering()
        self.assertEqual(record.last_successful_stream_ordering, upto)

    @defer.inlineCallbacks
    def test_restart_resumes_backoff_and_catch_up(self):
        """After a restart the stored back-off is honoured and the events missed before the
        restart are sent from the database, oldest first."""
        self.fed_client.down.add(REMOTE)
        ids = yield self.say(3)
        yield self.sender.stopService()

        clock = task.Clock()
        clock.advance(START + 1)
        client = RecordingClient()
        restarted = yield self.start_sender(clock=clock, client=client)
        yield restarted.idle()
        self.assertEqual(client.transactions, [])
        clock.advance(delay_s(1))
        yield restarted.idle()
        [(_txn, pdus, _edus)] = client.to(REMOTE)
        self.assertEqual(self.event_ids(pdus), ids)
        record = yield self.store.federation.get_destination(REMOTE)
        self.assertEqual((record.retry_interval, record.failure_ts), (0, None))

    @defer.inlineCallbacks
    def test_restart_before_first_answer_loses_nothing(self):
        """Events queued for a server that never answered before a restart (a first contact
        hanging) are sent from the database after the restart."""
        self.fed_client.held.add(REMOTE)
        ids = yield self.say(4, wait_for=())
        yield self.sender.stopService()
        client = RecordingClient()
        restarted = yield self.start_sender(client=client)
        yield restarted.idle()
        self.assertEqual([i for _t, pdus, _e in client.to(REMOTE) for i in self.event_ids(pdus)], ids)

    @defer.inlineCallbacks
    def test_events_queued_behind_failed_first_contact_kept(self):
        """Events queued while the very first transaction to a server (typing only) hangs and
        then fails are sent once the server is back."""
        self.fed_client.held.add(REMOTE)
        self.typing.set_typing(self.room_id, self.alice, True, 60_000)
        ids = yield self.say(2, wait_for=())
        self.fed_client.fail_held(REMOTE)
        yield self.sender.idle()
        yield self.advance(delay_s(1))
        _txn, pdus, edus = self.fed_client.to(REMOTE)[-1]
        self.assertEqual(self.event_ids(pdus), ids)
        self.assertEqual([e["edu_type"] for e in edus], ["m.typing"])

    @defer.inlineCallbacks
    def test_database_error_retried(self):
        """A queue whose database read fails logs it and tries again after the shortest
        back-off instead of staying stuck."""
        yield self.sender.stopService()
        self.sender = yield self.start_sender(federation_store=FlakyFederationStore(self.store.federation, 1))
        ids = yield self.say(1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.fed_client.to(REMOTE), [])
        yield self.advance(MIN_RETRY_MS / 1000.0)
        self.assertEqual(self.sent_ids(REMOTE), ids)

    @defer.inlineCallbacks
    def test_restart_resumes_schedule_position(self):
        """A restarted sender continues the back-off where it was (the next failure waits
        the next, longer delay)."""
        self.fed_client.down.add(REMOTE)
        yield self.say(1)
        yield self.advance(delay_s(1))
        yield self.sender.stopService()
        client = RecordingClient()
        client.down.add(REMOTE)
        clock = task.Clock()
        clock.advance(START + 100)
        restarted = yield self.start_sender(clock=clock, client=client)
        yield restarted.idle()
        self.assertEqual(len(client.to(REMOTE)), 1)
        self.assertEqual(restarted.queue(REMOTE).retry_interval_ms, delay_s(3) * 1000)

    @defer.inlineCallbacks
    def test_healthy_restart_sends_only_what_was_missed(self):
        """Events sent successfully before a restart are not sent again after it; the
        restarted server only tells the other server it is back (one empty transaction), so
        that anything kept for it comes at once."""
        yield self.say(2)
        yield self.sender.stopService()
        client = RecordingClient()
        restarted = yield self.start_sender(client=client)
        yield restarted.idle()
        self.assertEqual([(d, p, e) for d, _txn, p, e in client.transactions], [(REMOTE, [], [])])


class EduTests(SenderFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_typing_start_and_stop(self):
        """Alice starting and stopping typing sends m.typing true then false; remote typers
        are not echoed."""
        self.typing.set_typing(self.room_id, self.alice, True, 10_000)
        self.typing.set_typing(self.room_id, self.bob, True, 10_000)
        yield self.sender.idle()
        self.typing.set_typing(self.room_id, self.alice, False)
        yield self.sender.idle()
        edus = [e for _t, _p, edus in self.fed_client.to(REMOTE) for e in edus]
        self.assertEqual(edus, [
            {"edu_type": "m.typing", "content": {"room_id": self.room_id, "user_id": self.alice, "typing": True}},
            {"edu_type": "m.typing", "content": {"room_id": self.room_id, "user_id": self.alice, "typing": False}},
        ])

    @defer.inlineCallbacks
    def test_typing_timeout_sends_stop(self):
        """When alice's typing times out, the other server is told she stopped."""
        self.typing.set_typing(self.room_id, self.alice, True, 10_000)
        yield self.sender.idle()
        yield self.advance(10)
        edus = [e["content"]["typing"] for _t, _p, edus in self.fed_client.to(REMOTE) for e in edus]
        self.assertEqual(edus, [True, False])

    @defer.inlineCallbacks
    def test_long_typing_refreshed(self):
        """While alice keeps typing, the other server is reminded every 20 seconds, so it
        does not forget her."""
        self.typing.set_typing(self.room_id, self.alice, True, 60_000)
        yield self.sender.idle()
        yield self.advance(19)
        self.assertEqual(len(self.fed_client.to(REMOTE)), 1)
        yield self.advance(1)
        edus = [e["content"] for _t, _p, edus in self.fed_client.to(REMOTE) for e in edus]
        self.assertEqual([(e["user_id"], e["typing"]) for e in edus], [(self.alice, True)] * 2)
        self.typing.set_typing(self.room_id, self.alice, False)
        yield self.sender.idle()
        yield self.advance(40)
        edus = [e["content"]["typing"] for _t, _p, edus in self.fed_client.to(REMOTE) for e in edus]
        self.assertEqual(edus, [True, True, False])

    @defer.inlineCallbacks
    def test_public_read_receipt_sent_private_not(self):
        """Alice's m.read receipt goes out as m.receipt; her m.read.private does not."""
        [event_id] = yield self.say(1)
        for receipt_type in ("m.read.private", "m.read"):
            position = yield self.store.client_data.put_receipt(
                self.room_id, receipt_type, self.alice, event_id, {"ts": 1234}
            )
            self.notifier.notify(RECEIPTS_STREAM, position, room_ids=[self.room_id])
        yield self.sender.idle()
        edus = [e for _t, _p, edus in self.fed_client.to(REMOTE) for e in edus]
        self.assertEqual(edus, [{
            "edu_type": "m.receipt",
            "content": {self.room_id: {"m.read": {self.alice: {"event_ids": [event_id], "data": {"ts": 1234}}}}},
        }])

    @defer.inlineCallbacks
    def test_edu_batching(self):
        """151 queued EDUs go out 100 per transaction, the next transaction only after the
        first was answered."""
        self.fed_client.held.add(REMOTE)
        queue = self.sender.queue(REMOTE)
        for i in range(151):
            queue.send_edu("m.typing", {"room_id": self.room_id, "user_id": self.alice, "typing": i % 2 == 0})
        yield self.sender.idle(())
        while not self.fed_client.to(REMOTE):
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual([len(edus) for _t, _p, edus in self.fed_client.to(REMOTE)], [100])
        self.fed_client.release(REMOTE)
        yield self.sender.idle()
        self.assertEqual([len(edus) for _t, _p, edus in self.fed_client.to(REMOTE)], [100, 51])

    @defer.inlineCallbacks
    def test_edus_kept_through_backoff(self):
        """EDUs for a server that is down are sent when it comes back."""
        self.fed_client.down.add(REMOTE)
        self.typing.set_typing(self.room_id, self.alice, True, 60_000)
        yield self.sender.idle()
        self.fed_client.down.discard(REMOTE)
        yield self.advance(delay_s(1))
        _txn, _pdus, edus = self.fed_client.to(REMOTE)[-1]
        self.assertEqual([e["content"]["user_id"] for e in edus], [self.alice])
