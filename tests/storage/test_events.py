"""Conformance suite for IEventStore, run against SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.interfaces import IEventStore
from mxref.storage.records import ClientTxn, PersistBatch, RoomPosition, RoomUpdate
from mxref.storage.sql.store import make_store
from tests.storage.harness import EventFactory, PostgresBackendMixin, SqliteBackendMixin

ALICE = "@alice:example.org"
BOB = "@bob:remote.test"


class EventStoreConformanceMixin:
    """What every IEventStore must do; needs ``self.store``."""

    def setUp(self):
        self.events = EventFactory()
        return super().setUp()

    @defer.inlineCallbacks
    def persist(self, *events, extremities=None, state=None, remove=(), room_id=None):
        """Persist events (plus a room update when extremities/state are given)."""
        updates = []
        if extremities is not None or state or remove:
            updates.append(RoomUpdate(
                room_id or self.events.room_id,
                forward_extremities=extremities,
                state_delta_to_insert=state or {},
                state_delta_to_delete=remove,
            ))
        result = yield self.store.events.persist_events(PersistBatch(events, updates))
        return result

    @defer.inlineCallbacks
    def make_room(self):
        """Persist create, Alice's join and a message; returns the three events."""
        create = self.events.make("m.room.create", state_key="", content={"room_version": "11"}, depth=1)
        join = self.events.member(ALICE, depth=2, prev=[create.event_id], auth=[create.event_id])
        message = self.events.make(
            "m.room.message", depth=3, prev=[join.event_id], auth=[create.event_id, join.event_id],
            content={"body": "hello"},
        )
        yield self.persist(
            create, join, message,
            extremities=[message.event_id],
            state={("m.room.create", ""): create.event_id, ("m.room.member", ALICE): join.event_id},
        )
        return create, join, message

    def test_provides_interface(self):
        """The event store fully implements IEventStore."""
        self.assertTrue(verifyObject(IEventStore, self.store.events))

    @defer.inlineCallbacks
    def test_persist_and_get_event(self):
        """A persisted event reads back with its PDU and every recorded field."""
        create, join, message = yield self.make_room()
        stored = yield self.store.events.get_event(message.event_id)
        self.assertEqual(stored.pdu, message.pdu)
        self.assertEqual(
            (stored.room_id, stored.type, stored.sender, stored.depth, stored.state_key),
            (self.events.room_id, "m.room.message", ALICE, 3, None),
        )
        self.assertEqual(stored.prev_event_ids, (join.event_id,))
        self.assertEqual(stored.auth_event_ids, (create.event_id, join.event_id))
        self.assertFalse(stored.outlier)
        self.assertFalse(stored.soft_failed)
        self.assertIsNone(stored.rejected_reason)
        member = yield self.store.events.get_event(join.event_id)
        self.assertEqual(member.membership, "join")
        self.assertTrue(member.is_state)
        missing = yield self.store.events.get_event("$nope:example.org")
        self.assertIsNone(missing)

    @defer.inlineCallbacks
    def test_stream_orderings_follow_batch_order(self):
        """Each non-outlier event gets the next stream ordering, in batch order, and the max advances."""
        before = yield self.store.events.get_max_stream_ordering()
        self.assertEqual(before, 0)
        a = self.events.make("m.room.message", depth=1)
        b = self.events.make("m.room.message", depth=2, prev=[a.event_id])
        orderings = yield self.persist(a, b)
        self.assertEqual(orderings, {a.event_id: 1, b.event_id: 2})
        c = self.events.make("m.room.message", depth=3, prev=[b.event_id])
        orderings = yield self.persist(c)
        self.assertEqual(orderings, {c.event_id: 3})
        self.assertEqual((yield self.store.events.get_max_stream_ordering()), 3)
        stored = yield self.store.events.get_event(c.event_id)
        self.assertEqual(stored.stream_ordering, 3)

    @defer.inlineCallbacks
    def test_persisting_twice_is_idempotent(self):
        """Persisting an already stored event changes nothing and reports its existing ordering."""
        a = self.events.make("m.room.message")
        first = yield self.persist(a)
        second = yield self.persist(a)
        self.assertEqual(first, second)
        self.assertEqual((yield self.store.events.get_max_stream_ordering()), 1)

    @defer.inlineCallbacks
    def test_outlier_has_no_stream_ordering_until_promoted(self):
        """An outlier is stored without a stream ordering; persisting it with state later promotes it."""
        event = self.events.make("m.room.power_levels", state_key="", outlier=True, state_group=7)
        orderings = yield self.persist(event)
        self.assertEqual(orderings, {})
        stored = yield self.store.events.get_event(event.event_id)
        self.assertTrue(stored.outlier)
        self.assertIsNone(stored.stream_ordering)
        self.assertIsNone(stored.state_group)
        group = yield self.store.state.store_state_group(self.events.room_id, None, {("m.room.power_levels", ""): event.event_id})
        promoted = self.events.make(
            "m.room.power_levels", state_key="", event_id=event.event_id, state_group=group
        )
        orderings = yield self.persist(promoted)
        self.assertEqual(orderings, {event.event_id: 1})
        stored = yield self.store.events.get_event(event.event_id)
        self.assertFalse(stored.outlier)
        self.assertEqual(stored.stream_ordering, 1)
        self.assertEqual(stored.state_group, group)

    @defer.inlineCallbacks
    def test_rejected_events_hidden_unless_asked(self):
        """A rejected event is kept (have_events sees it) but get_event hides it unless allow_rejected."""
        event = self.events.make("m.room.message", rejected_reason="auth")
        yield self.persist(event)
        self.assertIsNone((yield self.store.events.get_event(event.event_id)))
        stored = yield self.store.events.get_event(event.event_id, allow_rejected=True)
        self.assertEqual(stored.rejected_reason, "auth")
        have = yield self.store.events.have_events([event.event_id, "$other:example.org"])
        self.assertEqual(have, {event.event_id})
        found = yield self.store.events.get_events([event.event_id])
        self.assertEqual(found, {})

    @defer.inlineCallbacks
    def test_returned_pdus_are_copies(self):
        """Changing a PDU returned by get_event does not change what later reads return."""
        event = self.events.make("m.room.message", content={"body": "original"})
        yield self.persist(event)
        for _ in range(2):
            stored = yield self.store.events.get_event(event.event_id)
            self.assertEqual(stored.pdu["content"], {"body": "original"})
            stored.pdu["content"]["body"] = "changed"

    @defer.inlineCallbacks
    def test_get_events_returns_found_ones(self):
        """get_events maps the IDs found to their events and leaves out unknown IDs."""
        create, join, message = yield self.make_room()
        found = yield self.store.events.get_events([create.event_id, message.event_id, "$x:y"])
        self.assertEqual(set(found), {create.event_id, message.event_id})
        self.assertEqual(found[create.event_id].type, "m.room.create")
        self.assertEqual((yield self.store.events.get_events([])), {})

    @defer.inlineCallbacks
    def test_forward_extremities_replaced(self):
        """The forward extremities are exactly the last set given, highest depth first."""
        create, join, message = yield self.make_room()
        extremities = yield self.store.events.get_forward_extremities(self.events.room_id)
        self.assertEqual(extremities, [(message.event_id, 3)])
        fork = self.events.make("m.room.message", depth=3, prev=[join.event_id])
        yield self.persist(fork, extremities=[message.event_id, fork.event_id, join.event_id])
        extremities = yield self.store.events.get_forward_extremities(self.events.room_id)
        self.assertEqual(
            extremities,
            sorted([(message.event_id, 3), (fork.event_id, 3)]) + [(join.event_id, 2)],
        )
        other = yield self.store.events.get_forward_extremities("!other:example.org")
        self.assertEqual(other, [])

    @defer.inlineCallbacks
    def test_current_state_delta(self):
        """A current-state delta adds, replaces and removes keys; types filter the result."""
        create, join, message = yield self.make_room()
        state = yield self.store.events.get_current_state_ids(self.events.room_id)
        self.assertEqual(state, {("m.room.create", ""): create.event_id, ("m.room.member", ALICE): join.event_id})
        name = self.events.make("m.room.name", state_key="", content={"name": "Room"}, depth=4)
        leave = self.events.member(ALICE, "leave", depth=5)
        yield self.persist(
            name, leave,
            state={("m.room.name", ""): name.event_id, ("m.room.member", ALICE): leave.event_id},
            remove=[("m.room.create", "")],
        )
        state = yield self.store.events.get_current_state_ids(self.events.room_id)
        self.assertEqual(state, {("m.room.name", ""): name.event_id, ("m.room.member", ALICE): leave.event_id})
        members = yield self.store.events.get_current_state_ids(
            self.events.room_id, types=[("m.room.member", None)]
        )
        self.assertEqual(members, {("m.room.member", ALICE): leave.event_id})
        named = yield self.store.events.get_current_state_ids(
            self.events.room_id, types=[("m.room.name", ""), ("m.room.topic", "")]
        )
        self.assertEqual(named, {("m.room.name", ""): name.event_id})
        events = yield self.store.events.get_current_state(self.events.room_id, types=[("m.room.name", "")])
        self.assertEqual(events[("m.room.name", "")].pdu["content"], {"name": "Room"})

    @defer.inlineCallbacks
    def test_current_state_at_stream(self):
        """get_current_state_ids(at_stream=) gives current state as it was at that position."""
        create, join, message = yield self.make_room()
        position = yield self.store.events.get_max_stream_ordering()
        topic = self.events.make("m.room.topic", state_key="", content={"topic": "t"}, depth=4)
        leave = self.events.member(ALICE, "leave", depth=5)
        yield self.persist(topic, leave, state={("m.room.topic", ""): topic.event_id,
                                                ("m.room.member", ALICE): leave.event_id})
        then = yield self.store.events.get_current_state_ids(self.events.room_id, at_stream=position)
        self.assertEqual(then, {("m.room.create", ""): create.event_id, ("m.room.member", ALICE): join.event_id})
        at_start = yield self.store.events.get_current_state_ids(self.events.room_id, at_stream=0)
        self.assertEqual(at_start, {})
        deltas = yield self.store.events.get_current_state_deltas(position, position + 10)
        self.assertEqual(
            sorted(deltas),
            sorted([
                (position + 2, self.events.room_id, "m.room.topic", "", topic.event_id),
                (position + 2, self.events.room_id, "m.room.member", ALICE, leave.event_id),
            ]),
        )

    @defer.inlineCallbacks
    def test_state_ids_at_event(self):
        """The state after an event is the state group recorded with it; outliers have none."""
        group = yield self.store.state.store_state_group(
            self.events.room_id, None, {("m.room.create", ""): "$c:example.org"}
        )
        event = self.events.make("m.room.message", state_group=group)
        outlier = self.events.make("m.room.message", outlier=True)
        yield self.persist(event, outlier)
        state = yield self.store.events.get_state_ids_at_event(event.event_id)
        self.assertEqual(state, {("m.room.create", ""): "$c:example.org"})
        self.assertIsNone((yield self.store.events.get_state_ids_at_event(outlier.event_id)))
        self.assertIsNone((yield self.store.events.get_state_ids_at_event("$unknown:example.org")))

    @defer.inlineCallbacks
    def make_timeline(self, count):
        """A linear room of ``count`` messages at depths 1..count; returns them."""
        events, prev = [], []
        for depth in range(1, count + 1):
            event = self.events.make("m.room.message", depth=depth, prev=prev, content={"n": depth})
            events.append(event)
            prev = [event.event_id]
        yield self.persist(*events)
        return events

    @defer.inlineCallbacks
    def test_pagination_backwards_and_forwards(self):
        """/messages-style paging walks the timeline in topological order without gaps or repeats."""
        events = yield self.make_timeline(7)
        ids = [e.event_id for e in events]
        top = yield self.store.events.get_max_stream_ordering()
        page = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(None, top), None, 3, "b"
        )
        self.assertEqual([e.event_id for e in page], ids[::-1][:3])
        page2 = yield self.store.events.get_room_events_stream(
            self.events.room_id, page[-1].position_before, None, 3, "b"
        )
        self.assertEqual([e.event_id for e in page2], ids[::-1][3:6])
        forward = yield self.store.events.get_room_events_stream(
            self.events.room_id, page2[-1].position_before, None, 10, "f"
        )
        self.assertEqual([e.event_id for e in forward], ids[1:])
        bounded = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(None, top), page2[0].position, 10, "b"
        )
        self.assertEqual([e.event_id for e in bounded], ids[::-1][:3])
        bounded_forward = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(None, 0), page2[0].position, 10, "f"
        )
        self.assertEqual([e.event_id for e in bounded_forward], ids[:4])

    @defer.inlineCallbacks
    def test_pagination_orders_by_depth_then_stream(self):
        """An event backfilled later but with lower depth pages in by depth, not arrival."""
        events = yield self.make_timeline(3)
        old = self.events.make("m.room.message", depth=0, content={"backfilled": True})
        yield self.persist(old)
        top = yield self.store.events.get_max_stream_ordering()
        page = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(None, top), None, 10, "b"
        )
        self.assertEqual([e.event_id for e in page], [e.event_id for e in events[::-1]] + [old.event_id])

    @defer.inlineCallbacks
    def test_backfilled_events_numbered_below_zero(self):
        """Backfilled history gets negative stream orderings: paged through by depth, never in an incremental sync."""
        events = yield self.make_timeline(3)
        older = self.events.make("m.room.message", depth=1, content={"n": 1}, backfilled=True)
        oldest = self.events.make("m.room.message", depth=0, content={"n": 0}, backfilled=True)
        self.assertEqual((yield self.persist(older)), {older.event_id: -1})
        self.assertEqual((yield self.persist(oldest)), {oldest.event_id: -2})
        self.assertEqual((yield self.store.events.get_max_stream_ordering()), 3)
        since = yield self.store.events.get_events_since(0, [self.events.room_id], 10)
        self.assertEqual([e.event_id for e in since[self.events.room_id].events], [e.event_id for e in events])
        top = yield self.store.events.get_max_stream_ordering()
        page = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(10, top), None, 10, "b"
        )
        self.assertEqual(page[-2:], [e for e in page if e.event_id in (older.event_id, oldest.event_id)])
        self.assertEqual(page[-1].event_id, oldest.event_id)
        forward = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(-1, 0), None, 10, "f"
        )
        self.assertEqual(forward[0].event_id, oldest.event_id)
        self.assertEqual(len(forward), 5)
        resumed = yield self.store.events.get_room_events_stream(
            self.events.room_id, forward[0].position, None, 10, "f"
        )
        self.assertEqual([e.event_id for e in resumed], [e.event_id for e in forward[1:]])

    @defer.inlineCallbacks
    def test_clients_do_not_see_hidden_events(self):
        """Soft-failed, rejected and outlier events are left out of /messages and /sync reads."""
        visible = self.events.make("m.room.message", depth=1)
        soft = self.events.make("m.room.message", depth=2, soft_failed=True)
        rejected = self.events.make("m.room.message", depth=3, rejected_reason="auth")
        outlier = self.events.make("m.room.message", depth=4, outlier=True)
        yield self.persist(visible, soft, rejected, outlier)
        page = yield self.store.events.get_room_events_stream(
            self.events.room_id, RoomPosition(None, 100), None, 10, "b"
        )
        self.assertEqual([e.event_id for e in page], [visible.event_id])
        since = yield self.store.events.get_events_since(0, [self.events.room_id], 10)
        self.assertEqual([e.event_id for e in since[self.events.room_id].events], [visible.event_id])

    @defer.inlineCallbacks
    def test_events_since(self):
        """Incremental sync gets each room's newest events after the token, flagged limited when cut."""
        events = yield self.make_timeline(5)
        other_room = EventFactory("!other:example.org")
        lone = other_room.make("m.room.message")
        yield self.store.events.persist_events(PersistBatch([lone]))
        result = yield self.store.events.get_events_since(2, [self.events.room_id, "!other:example.org"], 2)
        chunk = result[self.events.room_id]
        self.assertEqual([e.event_id for e in chunk.events], [events[3].event_id, events[4].event_id])
        self.assertTrue(chunk.limited)
        self.assertEqual([e.event_id for e in result["!other:example.org"].events], [lone.event_id])
        self.assertFalse(result["!other:example.org"].limited)
        exact = yield self.store.events.get_events_since(2, [self.events.room_id], 3, to_stream=5)
        self.assertEqual([e.event_id for e in exact[self.events.room_id].events],
                         [e.event_id for e in events[2:]])
        self.assertFalse(exact[self.events.room_id].limited)
        none = yield self.store.events.get_events_since(6, [self.events.room_id], 10)
        self.assertEqual(none, {})
        self.assertEqual((yield self.store.events.get_events_since(0, [], 10)), {})
        initial = yield self.store.events.get_events_since(None, [self.events.room_id], 1)
        self.assertEqual([e.event_id for e in initial[self.events.room_id].events], [events[4].event_id])

    @defer.inlineCallbacks
    def test_auth_chain(self):
        """The auth chain is every event reachable through auth_events, transitively."""
        create, join, message = yield self.make_room()
        power = self.events.make("m.room.power_levels", state_key="", depth=3,
                                 auth=[create.event_id, join.event_id])
        later = self.events.make("m.room.message", depth=4, auth=[power.event_id, join.event_id])
        yield self.persist(power, later)
        chain = yield self.store.events.get_auth_chain_ids([later.event_id])
        self.assertEqual(chain, {power.event_id, join.event_id, create.event_id})
        chain = yield self.store.events.get_auth_chain_ids([join.event_id, create.event_id])
        self.assertEqual(chain, {create.event_id})
        self.assertEqual((yield self.store.events.get_auth_chain_ids([])), set())

    @defer.inlineCallbacks
    def test_just_persisted_events_read_back_as_from_the_database(self):
        """Events read right after they are persisted (served from memory) equal the same
        events read by a store that never saw them persisted, rejected ones included."""
        create, join, message = yield self.make_room()
        rejected = self.events.make(
            "m.room.message", depth=4, prev=[message.event_id], auth=[create.event_id], rejected_reason="auth"
        )
        yield self.persist(rejected)
        ids = [create.event_id, join.event_id, message.event_id, rejected.event_id]
        remembered = yield self.store.events.get_events(ids, allow_rejected=True)
        fresh = make_store(self.database).events
        self.assertEqual(remembered, (yield fresh.get_events(ids, allow_rejected=True)))
        self.assertEqual(set(remembered), set(ids))
        remembered[message.event_id].pdu["content"]["body"] = "changed by a caller"
        again = yield self.store.events.get_event(message.event_id)
        self.assertEqual(again.pdu["content"]["body"], "hello")

    @defer.inlineCallbacks
    def test_redactions_of(self):
        """Redactions targeting an event are found; rejected and soft-failed ones are not."""
        create, join, message = yield self.make_room()
        good = self.events.make("m.room.redaction", redacts=message.event_id, content={"redacts": message.event_id})
        bad = self.events.make("m.room.redaction", redacts=message.event_id, rejected_reason="auth")
        soft = self.events.make("m.room.redaction", redacts=message.event_id, soft_failed=True)
        yield self.persist(good, bad, soft)
        redactions = yield self.store.events.get_redactions_of(message.event_id)
        self.assertEqual(redactions, [good.event_id])
        stored = yield self.store.events.get_event(good.event_id)
        self.assertEqual(stored.redacts, message.event_id)
        self.assertEqual((yield self.store.events.get_redactions_of(join.event_id)), [])
        both = self.events.make("m.room.redaction", redacts=join.event_id, content={"redacts": join.event_id})
        yield self.persist(both)
        many = yield self.store.events.get_redactions_of_events(
            [message.event_id, join.event_id, create.event_id, message.event_id]
        )
        self.assertEqual(many, {message.event_id: [good.event_id], join.event_id: [both.event_id]})
        self.assertEqual((yield self.store.events.get_redactions_of_events([])), {})

    @defer.inlineCallbacks
    def test_client_txn_ids(self):
        """A client transaction ID maps to the event it produced, per user and device."""
        event = self.events.make("m.room.message", txn=ClientTxn(ALICE, "DEV", "t1"))
        no_device = self.events.make("m.room.message", txn=ClientTxn(ALICE, None, "t1"))
        yield self.persist(event, no_device)
        self.assertEqual((yield self.store.events.get_event_by_txn_id(ALICE, "DEV", "t1")), event.event_id)
        self.assertEqual((yield self.store.events.get_event_by_txn_id(ALICE, None, "t1")), no_device.event_id)
        self.assertIsNone((yield self.store.events.get_event_by_txn_id(ALICE, "OTHER", "t1")))
        self.assertIsNone((yield self.store.events.get_event_by_txn_id(BOB, "DEV", "t1")))

    @defer.inlineCallbacks
    def test_txn_ids_of_events(self):
        """A device can look up the transaction IDs of its own events, and only its own."""
        mine = self.events.make("m.room.message", txn=ClientTxn(ALICE, "DEV", "t1"))
        other_device = self.events.make("m.room.message", txn=ClientTxn(ALICE, "DEV2", "t2"))
        no_txn = self.events.make("m.room.message")
        yield self.persist(mine, other_device, no_txn)
        ids = [mine.event_id, other_device.event_id, no_txn.event_id]
        self.assertEqual((yield self.store.events.get_txn_ids(ALICE, "DEV", ids)), {mine.event_id: "t1"})
        self.assertEqual((yield self.store.events.get_txn_ids(BOB, "DEV", ids)), {})
        self.assertEqual((yield self.store.events.get_txn_ids(ALICE, "DEV", [])), {})

    @defer.inlineCallbacks
    def test_prev_event_ids_keep_pdu_order(self):
        """prev_event_ids come back in the order the PDU lists them."""
        a = self.events.make("m.room.message", event_id="$zzz:example.org")
        b = self.events.make("m.room.message", event_id="$aaa:example.org")
        c = self.events.make("m.room.message", depth=2, prev=[a.event_id, b.event_id])
        yield self.persist(a, b, c)
        self.assertEqual((yield self.store.events.get_prev_event_ids(c.event_id)), [a.event_id, b.event_id])
        self.assertEqual((yield self.store.events.get_prev_event_ids("$unknown:x")), [])

    @defer.inlineCallbacks
    def test_v1_reference_format(self):
        """Room v1/v2 [event_id, hashes] references are read as plain event IDs."""
        a = self.events.make("m.room.message")
        event = self.events.make("m.room.message", depth=2, prev=[[a.event_id, {"sha256": "h"}]],
                                 auth=[[a.event_id, {"sha256": "h"}]])
        self.assertEqual(event.prev_event_ids, (a.event_id,))
        yield self.persist(a, event)
        stored = yield self.store.events.get_event(event.event_id)
        self.assertEqual((stored.prev_event_ids, stored.auth_event_ids), ((a.event_id,), (a.event_id,)))

    @defer.inlineCallbacks
    def test_backfill_walks_back_by_depth(self):
        """Backfill returns the given events and their predecessors, deepest first, up to the limit."""
        events = yield self.make_timeline(6)
        ids = yield self.store.events.get_backfill_ids(self.events.room_id, [events[4].event_id], 3)
        self.assertEqual(ids, [events[4].event_id, events[3].event_id, events[2].event_id])
        everything = yield self.store.events.get_backfill_ids(self.events.room_id, [events[5].event_id], 100)
        self.assertEqual(everything, [e.event_id for e in reversed(events)])
        none = yield self.store.events.get_backfill_ids("!elsewhere:example.org", [events[5].event_id], 10)
        self.assertEqual(none, [])

    @defer.inlineCallbacks
    def test_backfill_through_a_fork(self):
        """Backfill over two branches visits both, interleaved by depth."""
        root = self.events.make("m.room.create", state_key="", depth=1)
        left = self.events.make("m.room.message", depth=2, prev=[root.event_id])
        right1 = self.events.make("m.room.message", depth=2, prev=[root.event_id])
        right2 = self.events.make("m.room.message", depth=3, prev=[right1.event_id])
        merge = self.events.make("m.room.message", depth=4, prev=[left.event_id, right2.event_id])
        yield self.persist(root, left, right1, right2, merge)
        ids = yield self.store.events.get_backfill_ids(self.events.room_id, [merge.event_id], 10)
        self.assertEqual(ids[:2], [merge.event_id, right2.event_id])
        self.assertEqual(set(ids[2:4]), {left.event_id, right1.event_id})
        self.assertEqual(ids[4], root.event_id)

    @defer.inlineCallbacks
    def test_missing_events(self):
        """get_missing_events walks back from latest, stopping at earliest, oldest first."""
        events = yield self.make_timeline(6)
        ids = yield self.store.events.get_missing_events(
            self.events.room_id, [events[1].event_id], [events[5].event_id], 10
        )
        self.assertEqual(ids, [e.event_id for e in events[2:5]])
        limited = yield self.store.events.get_missing_events(
            self.events.room_id, [], [events[5].event_id], 2
        )
        self.assertEqual(limited, [events[3].event_id, events[4].event_id])
        shallow = yield self.store.events.get_missing_events(
            self.events.room_id, [], [events[5].event_id], 10, min_depth=4
        )
        self.assertEqual(shallow, [events[3].event_id, events[4].event_id])

    @defer.inlineCallbacks
    def test_unicode_and_large_json(self):
        """Non-ASCII text, emoji, escapes, lone surrogates and a 1 MB body round-trip exactly."""
        content = {
            "body": "Grüße, 世界! 🎉 \u0000 \"quoted\" \\ back",
            "lone": "\ud800",
            "big": "x" * 1_000_000,
            "nested": {"ключ": ["значение", 1, 2.5, None, True]},
        }
        event = self.events.make("m.room.message", content=content, sender="@ünï:example.org")
        yield self.persist(event)
        stored = yield self.store.events.get_event(event.event_id)
        self.assertEqual(stored.pdu["content"], content)
        self.assertEqual(stored.sender, "@ünï:example.org")

    @defer.inlineCallbacks
    def test_nul_in_indexed_field_refused(self):
        """An event whose state key holds a NUL character is refused whole, on every engine."""
        fine = self.events.make("m.room.message")
        bad = self.events.make("m.room.topic", state_key="a\x00b")
        yield self.assertFailure(self.persist(fine, bad), ValueError)
        self.assertEqual((yield self.store.events.have_events([fine.event_id])), set())

    @defer.inlineCallbacks
    def test_concurrent_persists_keep_orderings_unique_and_increasing(self):
        """Many persists in flight at once get distinct orderings that increase in batch order."""
        batches = []
        for i in range(25):
            room = EventFactory(f"!room{i % 5}:example.org")
            batches.append([room.make("m.room.message", depth=j + 1) for j in range(3)])
        results = yield defer.gatherResults(
            [self.store.events.persist_events(PersistBatch(batch)) for batch in batches]
        )
        all_orderings = []
        for batch, result in zip(batches, results):
            orderings = [result[e.event_id] for e in batch]
            self.assertEqual(orderings, sorted(orderings))
            all_orderings.extend(orderings)
        self.assertEqual(sorted(all_orderings), list(range(1, 76)))
        self.assertEqual((yield self.store.events.get_max_stream_ordering()), 75)

    @defer.inlineCallbacks
    def test_concurrent_persists_of_one_event(self):
        """The same event persisted by several concurrent batches is stored once, with one ordering."""
        event = self.events.make("m.room.message")
        results = yield defer.gatherResults(
            [self.store.events.persist_events(PersistBatch([event])) for _ in range(6)]
        )
        self.assertEqual(results, [{event.event_id: 1}] * 6)
        self.assertEqual((yield self.store.events.get_max_stream_ordering()), 1)

    @defer.inlineCallbacks
    def test_failed_batch_writes_nothing(self):
        """A batch that fails part-way leaves no trace: no events, no state, no positions."""
        good = self.events.make("m.room.message")
        bad = self.events.make("m.room.message", content={"unserialisable": {1, 2}})
        d = self.persist(good, bad, extremities=[good.event_id], state={("m.room.name", ""): good.event_id})
        yield self.assertFailure(d, TypeError)
        self.assertEqual((yield self.store.events.have_events([good.event_id, bad.event_id])), set())
        self.assertEqual((yield self.store.events.get_current_state_ids(self.events.room_id)), {})
        self.assertEqual((yield self.store.events.get_forward_extremities(self.events.room_id)), [])
        self.assertEqual((yield self.store.events.get_max_stream_ordering()), 0)

    @defer.inlineCallbacks
    def test_state_reset_without_events_gets_a_position(self):
        """A current-state change with no new events is still recorded at a fresh stream position."""
        create, join, message = yield self.make_room()
        before = yield self.store.events.get_max_stream_ordering()
        yield self.persist(remove=[("m.room.member", ALICE)])
        after = yield self.store.events.get_max_stream_ordering()
        self.assertEqual(after, before + 1)
        deltas = yield self.store.events.get_current_state_deltas(before, after)
        self.assertEqual(deltas, [(after, self.events.room_id, "m.room.member", ALICE, None)])


class EventStoreSQLiteTests(EventStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """IEventStore conformance on SQLite."""


class EventStorePostgresTests(EventStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """IEventStore conformance on PostgreSQL."""
