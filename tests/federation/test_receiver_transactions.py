"""Inbound transactions and EDUs: limits, per-PDU results, deduplication, typing and receipts."""

from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.trial import unittest

from mxref.client.receipts.typing import TypingTracker
from mxref.errors import MatrixError
from mxref.events.signing import generate_signing_key
from mxref.federation.receiver.edus import EduRouter, ReceiptEduReceiver, TypingEduReceiver
from mxref.federation.receiver.pipeline import ACCEPTED, PduOutcome
from mxref.federation.receiver.transactions import TransactionReceiver
from tests.federation.receiver_support import REMOTE, ReceiverFixture


class TransactionTests(ReceiverFixture, unittest.TestCase):
    """``PUT /send/{txnId}`` as the transaction receiver sees it."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.typing = TypingTracker(Clock(), self.notifier)
        self.router = EduRouter()
        self.router.register(
            "m.typing", TypingEduReceiver(self.typing, self.store.rooms, self.acl).on_edu
        )
        self.router.register(
            "m.receipt",
            ReceiptEduReceiver(
                self.store.client_data, self.store.rooms, self.notifier, self.acl
            ).on_edu,
        )
        self.seen = []
        self.transactions = TransactionReceiver(
            self.store.federation,
            self.store.rooms,
            self.receiver,
            self.router,
            reactor,
            origin_seen=self.seen.append,
        )

    def send(self, txn_id, pdus=(), edus=()):
        return self.transactions.on_transaction(
            REMOTE,
            txn_id,
            {"origin": REMOTE, "origin_server_ts": 1, "pdus": list(pdus), "edus": list(edus)},
        )

    @defer.inlineCallbacks
    def test_results_per_pdu(self):
        """Each PDU gets an entry: empty for an accepted one, an error for a bad one."""
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        bad_id, bad = self.remote.build(
            self.bob, "m.room.message", {"body": "x"}, signing_key=generate_signing_key("r1")
        )
        code, body = yield self.send("t1", [join, bad])
        self.assertEqual(code, 200)
        self.assertEqual(body["pdus"][join_id], {})
        self.assertIn("error", body["pdus"][bad_id])

    @defer.inlineCallbacks
    def test_retry_gets_the_same_response_without_reprocessing(self):
        """A transaction repeated with the same ID gets the first response and changes nothing."""
        _, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        first = yield self.send("t1", [join])
        _, message = self.remote.build(self.bob, "m.room.message", {"body": "x"})
        again = yield self.send("t1", [message])
        self.assertEqual(again, first)
        self.assertEqual(self.seen, [REMOTE, REMOTE])
        self.assertEqual(len((yield self.store.events.get_forward_extremities(self.room_id))), 1)

    @defer.inlineCallbacks
    def test_concurrent_retry_shares_the_answer(self):
        """A retry arriving while the first delivery is processed gets the same answer."""
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        first, second = self.send("t2", [join]), self.send("t2", [join])
        results = yield defer.gatherResults([first, second])
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0][1]["pdus"], {join_id: {}})

    def test_limits(self):
        """More than 50 PDUs or 100 EDUs is refused with 400."""
        for pdus, edus in (([{}] * 51, []), ([], [{}] * 101)):
            failure = self.failureResultOf(self.send("big", pdus, edus), MatrixError)
            self.assertEqual(failure.value.code, 400)
        self.failureResultOf(
            self.transactions.on_transaction(REMOTE, "x", {"edus": []}), MatrixError
        )

    @defer.inlineCallbacks
    def test_typing_edu_reaches_the_tracker(self):
        """A joined remote user's typing notification shows in the room; another server's user's does not."""
        yield self.send(
            "t1",
            [
                self.remote.build(
                    self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
                )[1]
            ],
        )
        edus = [
            {
                "edu_type": "m.typing",
                "content": {"room_id": self.room_id, "user_id": self.bob, "typing": True},
            },
            {
                "edu_type": "m.typing",
                "content": {"room_id": self.room_id, "user_id": "@x:other.example", "typing": True},
            },
            {"edu_type": "m.unknown", "content": {}},
        ]
        yield self.send("t2", edus=edus)
        self.assertEqual(self.typing.typing_in(self.room_id), [self.bob])

    @defer.inlineCallbacks
    def test_receipt_edu_is_stored(self):
        """A joined remote user's read receipt is stored with its data."""
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        yield self.send("t1", [join])
        content = {
            self.room_id: {"m.read": {self.bob: {"event_ids": [join_id], "data": {"ts": 5}}}}
        }
        yield self.send("t2", edus=[{"edu_type": "m.receipt", "content": content}])
        receipts = yield self.store.client_data.get_receipts_since([self.room_id], 0)
        self.assertEqual(
            [(r.user_id, r.event_id, r.data) for r in receipts], [(self.bob, join_id, {"ts": 5})]
        )

    @defer.inlineCallbacks
    def test_receipts_of_acl_denied_rooms_are_ignored(self):
        """Receipts for a room whose ACL denies the origin are dropped."""
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        yield self.send("t1", [join])
        yield self.creator.send_event(
            self.room_id,
            self.alice,
            "m.room.server_acl",
            {"allow": ["*"], "deny": [REMOTE]},
            state_key="",
        )
        content = {
            self.room_id: {"m.read": {self.bob: {"event_ids": [join_id], "data": {"ts": 5}}}}
        }
        yield self.send("t2", edus=[{"edu_type": "m.receipt", "content": content}])
        self.assertEqual((yield self.store.client_data.get_receipts_since([self.room_id], 0)), [])

    @defer.inlineCallbacks
    def test_typing_from_denied_server_is_ignored(self):
        """Once the room's ACL denies the remote server, its typing EDUs change nothing."""
        yield self.send(
            "t1",
            [
                self.remote.build(
                    self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
                )[1]
            ],
        )
        yield self.creator.send_event(
            self.room_id,
            self.alice,
            "m.room.server_acl",
            {"allow": ["*"], "deny": [REMOTE]},
            state_key="",
        )
        edu = {
            "edu_type": "m.typing",
            "content": {"room_id": self.room_id, "user_id": self.bob, "typing": True},
        }
        yield self.send("t2", edus=[edu])
        self.assertEqual(self.typing.typing_in(self.room_id), [])


class StalledPduReceiver:
    """A PDU receiver that never finishes, standing for a slow room."""

    def __init__(self):
        self.pending = []

    def receive_pdu(self, origin, pdu):
        d = defer.Deferred()
        self.pending.append(d)
        return d


class BoundedTimeTests(ReceiverFixture, unittest.TestCase):
    """A transaction is answered within the processing timeout even if a room is slow."""

    @defer.inlineCallbacks
    def test_slow_processing_is_answered_after_the_timeout(self):
        """After the timeout the sender gets 200 with no error for the PDU still in progress."""
        clock = Clock()
        stalled = StalledPduReceiver()
        transactions = TransactionReceiver(
            self.store.federation,
            self.store.rooms,
            stalled,
            EduRouter(),
            clock,
            processing_timeout=30,
        )
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        d = transactions.on_transaction(REMOTE, "slow", {"pdus": [join], "edus": []})
        for _ in range(2000):
            if clock.getDelayedCalls():
                break
            yield task.deferLater(reactor, 0.002, lambda: None)
        self.assertFalse(d.called)
        clock.advance(30)
        code, body = yield d
        self.assertEqual((code, body), (200, {"pdus": {join_id: {}}}))
        self.assertEqual(len(stalled.pending), 1)


class CancelledDeliveryTests(ReceiverFixture, unittest.TestCase):
    """A sender that goes away does not stop the transaction or spoil its retry."""

    @defer.inlineCallbacks
    def test_cancelled_first_delivery(self):
        """Cancelling the first delivery's Deferred leaves processing running; the retry gets
        the full answer."""
        clock = Clock()
        stalled = StalledPduReceiver()
        transactions = TransactionReceiver(
            self.store.federation, self.store.rooms, stalled, EduRouter(), clock
        )
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        first = transactions.on_transaction(REMOTE, "t", {"pdus": [join], "edus": []})
        retry = transactions.on_transaction(REMOTE, "t", {"pdus": [join], "edus": []})
        first.cancel()
        self.failureResultOf(first, defer.CancelledError)
        for _ in range(2000):
            if stalled.pending:
                break
            yield task.deferLater(reactor, 0.002, lambda: None)
        stalled.pending[0].callback(PduOutcome(join_id, ACCEPTED))
        code, body = yield retry
        self.assertEqual((code, body), (200, {"pdus": {join_id: {}}}))


class EduRouterTests(unittest.TestCase):
    """``EduRouter`` calls the callback registered for each type, whatever it returns."""

    def test_callbacks_of_any_kind(self):
        """Plain, Deferred-returning and coroutine callbacks all run; failures are contained."""
        seen = []

        async def coroutine_callback(origin, content):
            seen.append(("async", origin, content))

        def failing(origin, content):
            raise ValueError("boom")

        router = EduRouter()
        router.register("a", lambda origin, content: seen.append(("plain", origin, content)))
        router.register("b", coroutine_callback)
        router.register("c", failing)
        self.assertEqual(router.registered_types(), ["a", "b", "c"])
        self.assertTrue(
            self.successResultOf(router.route("o", {"edu_type": "a", "content": {"x": 1}}))
        )
        self.assertTrue(self.successResultOf(router.route("o", {"edu_type": "b", "content": {}})))
        self.assertFalse(self.successResultOf(router.route("o", {"edu_type": "c", "content": {}})))
        self.assertFalse(self.successResultOf(router.route("o", {"edu_type": "d", "content": {}})))
        self.assertFalse(self.successResultOf(router.route("o", {"edu_type": "a", "content": []})))
        self.assertEqual(seen, [("plain", "o", {"x": 1}), ("async", "o", {})])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
