"""Receipts, read markers and typing notifications over HTTP."""

from twisted.trial import unittest

from mxref.client.receipts.resource import ReceiptResource
from mxref.client.receipts.service import ReadReceipts, TypingRequests
from mxref.client.receipts.typing import MAX_TYPING_TIMEOUT_MS, TypingTracker
from tests.client.rooms_support import RoomApiTestCase, path_part
from tests.client.support import deferred_test
from tests.schema import validate_request, validate_schema

RECEIPT = ("receipts.yaml", "/rooms/{roomId}/receipt/{receiptType}/{eventId}")
MARKERS = ("read_markers.yaml", "/rooms/{roomId}/read_markers")
TYPING = ("typing.yaml", "/rooms/{roomId}/typing/{userId}")


class ReceiptsTestCase(RoomApiTestCase):
    """Adds the receipt and typing endpoints and records every notification."""

    def add_more_routes(self):
        self.notifications = []
        self.notifier.subscribe(self.notifications.append)
        self.typing = TypingTracker(self.harness.clock, self.notifier)
        self.receipts = ReadReceipts(
            self.store.client_data,
            self.store.events,
            self.store.rooms,
            self.notifier,
            self.harness.clock,
        )
        self.harness.add_routes(
            ReceiptResource(
                self.receipts,
                TypingRequests(self.typing, self.store.rooms),
                self.harness.authenticator,
            )
        )

    def notified(self, stream):
        return [n for n in self.notifications if n.stream_name == stream]

    async def shared_room(self):
        room_id = await self.create_room(self.alice, preset="public_chat")
        await self.join(self.bob, room_id)
        return room_id


class ReceiptTests(ReceiptsTestCase):
    """``/receipt`` and ``/read_markers``."""

    @deferred_test
    async def test_read_receipt(self):
        """An m.read receipt is stored with a timestamp and announced to the room."""
        room_id = await self.shared_room()
        event_id = await self.send_text(self.alice, room_id, "read me")
        body = {"thread_id": "main"}
        validate_request(f"client-server/{RECEIPT[0]}", RECEIPT[1], "post", body)
        await self.ok(
            "POST",
            f"/rooms/{path_part(room_id)}/receipt/m.read/{path_part(event_id)}",
            body,
            self.bob,
            spec=RECEIPT,
        )
        receipts = await self.store.client_data.get_receipts_since([room_id], 0)
        self.assertEqual(
            [(r.receipt_type, r.user_id, r.event_id, r.thread_id) for r in receipts],
            [("m.read", self.bob.user_id, event_id, "main")],
        )
        self.assertEqual(receipts[0].data, {"ts": int(self.harness.clock.seconds() * 1000)})
        [notification] = self.notified("receipts")
        self.assertEqual(
            (notification.position, set(notification.room_ids)), (receipts[0].stream_id, {room_id})
        )

    @deferred_test
    async def test_private_receipt_and_fully_read(self):
        """A private receipt wakes only its user; m.fully_read becomes room account data."""
        room_id = await self.shared_room()
        event_id = await self.send_text(self.alice, room_id, "quiet")
        room, event = path_part(room_id), path_part(event_id)
        await self.ok("POST", f"/rooms/{room}/receipt/m.read.private/{event}", {}, self.bob)
        [notification] = self.notified("receipts")
        self.assertEqual(
            (set(notification.room_ids), set(notification.user_ids)), (set(), {self.bob.user_id})
        )
        await self.ok("POST", f"/rooms/{room}/receipt/m.fully_read/{event}", {}, self.bob)
        marker = await self.store.client_data.get_account_data(
            self.bob.user_id, room_id, "m.fully_read"
        )
        self.assertEqual(marker, {"event_id": event_id})
        self.assertEqual(len(self.notified("account_data")), 1)

    @deferred_test
    async def test_read_markers(self):
        """read_markers moves the fully read marker and sends the receipts given."""
        room_id = await self.shared_room()
        first = await self.send_text(self.alice, room_id, "one")
        second = await self.send_text(self.alice, room_id, "two")
        body = {"m.fully_read": first, "m.read": second, "m.read.private": second}
        validate_request(f"client-server/{MARKERS[0]}", MARKERS[1], "post", body)
        await self.ok(
            "POST", f"/rooms/{path_part(room_id)}/read_markers", body, self.bob, spec=MARKERS
        )
        marker = await self.store.client_data.get_account_data(
            self.bob.user_id, room_id, "m.fully_read"
        )
        self.assertEqual(marker, {"event_id": first})
        receipts = await self.store.client_data.get_receipts_since([room_id], 0)
        self.assertEqual(
            sorted((r.receipt_type, r.event_id) for r in receipts),
            [("m.read", second), ("m.read.private", second)],
        )

    @deferred_test
    async def test_refused(self):
        """Unknown types, bad threads, events of other rooms, non-members and bad bodies are refused."""
        room_id = await self.shared_room()
        other = await self.create_room(self.alice)
        event_id = await self.send_text(self.alice, room_id, "x")
        elsewhere = await self.send_text(self.alice, other, "y")
        room, event = path_part(room_id), path_part(event_id)
        await self.fails(
            400, "M_INVALID_PARAM", "POST", f"/rooms/{room}/receipt/m.seen/{event}", {}, self.bob
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "POST",
            f"/rooms/{room}/receipt/m.read/{event}",
            {"thread_id": ""},
            self.bob,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "POST",
            f"/rooms/{room}/receipt/m.read/{event}",
            {"thread_id": 4},
            self.bob,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "POST",
            f"/rooms/{room}/receipt/m.fully_read/{event}",
            {"thread_id": "main"},
            self.bob,
        )
        await self.fails(
            404,
            "M_NOT_FOUND",
            "POST",
            f"/rooms/{room}/receipt/m.read/{path_part(elsewhere)}",
            {},
            self.bob,
        )
        await self.fails(
            403, "M_FORBIDDEN", "POST", f"/rooms/{room}/receipt/m.read/{event}", {}, self.carol
        )
        await self.fails(
            400, "M_NOT_JSON", "POST", f"/rooms/{room}/receipt/m.read/{event}", b"[", self.bob
        )
        await self.fails(
            400, "M_BAD_JSON", "POST", f"/rooms/{room}/read_markers", {"m.read": 5}, self.bob
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "POST",
            f"/rooms/{room}/read_markers",
            {"m.read": event_id},
            self.carol,
        )
        await self.fails(
            401, "M_MISSING_TOKEN", "POST", f"/rooms/{room}/read_markers", {"m.read": event_id}
        )
        self.assertEqual(await self.store.client_data.get_receipts_since([room_id], 0), [])


class TypingTests(ReceiptsTestCase):
    """``/typing`` and the TypingTracker."""

    @deferred_test
    async def test_typing_starts_stops_and_expires(self):
        """Typing users are listed until they stop or their timeout passes, each change notified."""
        room_id = await self.shared_room()
        room = path_part(room_id)
        body = {"typing": True, "timeout": 5000}
        validate_request(f"client-server/{TYPING[0]}", TYPING[1], "put", body)
        await self.ok(
            "PUT",
            f"/rooms/{room}/typing/{path_part(self.bob.user_id)}",
            body,
            self.bob,
            spec=TYPING,
        )
        await self.ok(
            "PUT",
            f"/rooms/{room}/typing/{path_part(self.alice.user_id)}",
            {"typing": True},
            self.alice,
        )
        self.assertEqual(
            self.typing.typing_in(room_id), sorted([self.alice.user_id, self.bob.user_id])
        )
        await self.ok(
            "PUT",
            f"/rooms/{room}/typing/{path_part(self.alice.user_id)}",
            {"typing": False},
            self.alice,
        )
        self.assertEqual(self.typing.typing_in(room_id), [self.bob.user_id])
        event = self.typing.typing_event(room_id)
        self.assertEqual(event, {"type": "m.typing", "content": {"user_ids": [self.bob.user_id]}})
        validate_schema("event-schemas/schema/m.typing.yaml", event)
        before = self.typing.position
        self.harness.clock.advance(4)
        self.assertEqual(self.typing.typing_in(room_id), [self.bob.user_id])
        self.harness.clock.advance(1.5)
        self.assertEqual(self.typing.typing_in(room_id), [])
        self.assertTrue(self.typing.changed_since(room_id, before))
        self.assertEqual([n.position for n in self.notified("typing")], [1, 2, 3, 4])
        self.assertEqual(
            {frozenset(n.room_ids) for n in self.notified("typing")}, {frozenset([room_id])}
        )

    @deferred_test
    async def test_refused(self):
        """Typing for someone else, in a room one is not in, or with a bad body is refused."""
        room_id = await self.shared_room()
        room = path_part(room_id)
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            f"/rooms/{room}/typing/{path_part(self.alice.user_id)}",
            {"typing": True},
            self.bob,
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            f"/rooms/{room}/typing/{path_part(self.carol.user_id)}",
            {"typing": True},
            self.carol,
        )
        path = f"/rooms/{room}/typing/{path_part(self.bob.user_id)}"
        await self.fails(400, "M_MISSING_PARAM", "PUT", path, {}, self.bob)
        await self.fails(400, "M_BAD_JSON", "PUT", path, {"typing": "yes"}, self.bob)
        await self.fails(
            400, "M_BAD_JSON", "PUT", path, {"typing": True, "timeout": "5s"}, self.bob
        )
        await self.fails(
            400, "M_INVALID_PARAM", "PUT", path, {"typing": True, "timeout": -1}, self.bob
        )
        self.assertEqual(self.typing.typing_in(room_id), [])


class TypingTrackerTests(ReceiptsTestCase):
    """The tracker on its own."""

    @deferred_test
    async def test_timeouts_are_capped_and_extended(self):
        """Typing again extends the timeout without a new notification; huge timeouts are capped."""
        self.typing.set_typing("!r:test.example", "@u:test.example", True, 10_000)
        self.harness.clock.advance(8)
        self.typing.set_typing("!r:test.example", "@u:test.example", True, 10_000)
        self.harness.clock.advance(8)
        self.assertEqual(self.typing.typing_in("!r:test.example"), ["@u:test.example"])
        self.assertEqual(self.typing.position, 1)
        self.typing.set_typing("!r:test.example", "@v:test.example", True, 10**9)
        self.harness.clock.advance(MAX_TYPING_TIMEOUT_MS / 1000 + 1)
        self.assertEqual(self.typing.typing_in("!r:test.example"), [])
        self.assertFalse(self.typing.changed_since("!r:test.example", self.typing.position))


class TypingTrackerServiceTests(unittest.TestCase):
    """Stopping the typing tracker leaves no timers behind."""

    def test_stop_cancels_timeouts(self):
        """A user still typing when the server stops leaves no pending call on the clock."""
        from twisted.internet.task import Clock

        from mxref.client.receipts.typing import TypingTracker
        from mxref.notifier import Notifier

        clock = Clock()
        tracker = TypingTracker(clock, Notifier(clock))
        tracker.startService()
        tracker.set_typing("!r:x", "@a:x", True, 30000)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        tracker.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
