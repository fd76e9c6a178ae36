"""Conformance suite for the relations index of IEventStore (edits), on SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.storage.records import PersistBatch, RoomPosition
from mxref.storage.sql.events import relation_of
from tests.storage.harness import EventFactory, PostgresBackendMixin, SqliteBackendMixin

ALICE = "@alice:example.org"
BOB = "@bob:example.org"


def replace_of(original_id, body="edited"):
    """The content of an ``m.replace`` edit of ``original_id``."""
    return {
        "body": "* " + body,
        "m.new_content": {"body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_id},
    }


class RelationOfTests(unittest.TestCase):
    """Which contents name a relation."""

    def test_relation_read_from_content(self):
        """A well-formed m.relates_to gives (parent, rel_type); junk shapes give None."""
        self.assertEqual(
            relation_of({"content": replace_of("$a")}), ("$a", "m.replace")
        )
        for content in (
            None, [], {}, {"m.relates_to": []}, {"m.relates_to": {"event_id": "$a"}},
            {"m.relates_to": {"event_id": 1, "rel_type": "m.replace"}},
            {"m.relates_to": {"event_id": "$a\x00", "rel_type": "m.replace"}},
            {"m.relates_to": {"event_id": "", "rel_type": "m.replace"}},
        ):
            self.assertIsNone(relation_of({"content": content}), content)


class RelationStoreConformanceMixin:
    """What every IEventStore does with edits; needs ``self.store``."""

    def setUp(self):
        self.events = EventFactory()
        self.depth = 10
        return super().setUp()

    def make(self, event_type="m.room.message", sender=ALICE, ts=1000, **kwargs):
        self.depth += 1
        return self.events.make(event_type, sender=sender, depth=self.depth, ts=ts, **kwargs)

    def persist(self, *events):
        return self.store.events.persist_events(PersistBatch(events, []))

    @defer.inlineCallbacks
    def replacement_ids(self, *originals):
        found = yield self.store.events.get_replacements([o.event_id for o in originals])
        return {key: [e.event_id for e in value] for key, value in found.items()}

    @defer.inlineCallbacks
    def test_latest_edit_first(self):
        """Edits come most recent first: by origin_server_ts, then by the largest event ID."""
        original = self.make(content={"body": "hi"})
        early = self.make(ts=2000, content=replace_of(original.event_id, "one"))
        late_a = self.make(ts=3000, event_id="$a_late:example.org", content=replace_of(original.event_id))
        late_b = self.make(ts=3000, event_id="$b_late:example.org", content=replace_of(original.event_id))
        yield self.persist(original, late_b, early, late_a)
        found = yield self.replacement_ids(original)
        self.assertEqual(
            found, {original.event_id: [late_b.event_id, late_a.event_id, early.event_id]}
        )
        stored = (yield self.store.events.get_replacements([original.event_id]))[original.event_id][0]
        self.assertEqual(stored.pdu, late_b.pdu)

    @defer.inlineCallbacks
    def test_invalid_edits_ignored(self):
        """Edits by another sender, of another type, as state, or of a state event are not given."""
        original = self.make(content={"body": "hi"})
        state = self.make("m.room.topic", state_key="", content={"topic": "t"})
        by_bob = self.make(sender=BOB, content=replace_of(original.event_id))
        other_type = self.make("m.sticker", content=replace_of(original.event_id))
        as_state = self.make(state_key="x", content=replace_of(original.event_id))
        of_state = self.make("m.room.topic", content=replace_of(state.event_id))
        yield self.persist(original, state, by_bob, other_type, as_state, of_state)
        found = yield self.replacement_ids(original, state)
        self.assertEqual(found, {})

    @defer.inlineCallbacks
    def test_rejected_soft_failed_and_outlier_edits_ignored(self):
        """Only accepted timeline events count as edits."""
        original = self.make(content={"body": "hi"})
        rejected = self.make(content=replace_of(original.event_id), rejected_reason="auth")
        soft = self.make(content=replace_of(original.event_id), soft_failed=True)
        outlier = self.make(content=replace_of(original.event_id), outlier=True)
        good = self.make(content=replace_of(original.event_id))
        yield self.persist(original, rejected, soft, outlier, good)
        found = yield self.replacement_ids(original)
        self.assertEqual(found, {original.event_id: [good.event_id]})

    @defer.inlineCallbacks
    def test_edit_before_original_and_unknown_ids(self):
        """An edit stored before its original is found once the original arrives; unknown IDs give nothing."""
        original = self.make(content={"body": "hi"})
        edit = self.make(content=replace_of(original.event_id))
        yield self.persist(edit)
        self.assertEqual((yield self.replacement_ids(original)), {})
        yield self.persist(original)
        self.assertEqual((yield self.replacement_ids(original)), {original.event_id: [edit.event_id]})
        self.assertEqual((yield self.store.events.get_replacements(["$nope:x"])), {})
        self.assertEqual((yield self.store.events.get_replacements([])), {})

    @defer.inlineCallbacks
    def test_persisting_twice_keeps_one_edit(self):
        """Persisting an edit again does not duplicate it."""
        original = self.make(content={"body": "hi"})
        edit = self.make(content=replace_of(original.event_id))
        yield self.persist(original, edit)
        yield self.persist(edit)
        self.assertEqual((yield self.replacement_ids(original)), {original.event_id: [edit.event_id]})


    @defer.inlineCallbacks
    def test_relations_paged_and_filtered(self):
        """Children of an event come newest first (or oldest first), filtered by rel_type and type, paged by position."""
        parent = self.make(content={"body": "root"})
        edit = self.make(content=replace_of(parent.event_id))
        reaction = self.make("m.reaction", sender=BOB, content={
            "m.relates_to": {"rel_type": "m.annotation", "event_id": parent.event_id, "key": "x"}})
        thread = self.make(sender=BOB, content={
            "body": "t", "m.relates_to": {"rel_type": "m.thread", "event_id": parent.event_id}})
        unrelated = self.make(content={"body": "other"})
        rejected = self.make(content=replace_of(parent.event_id), rejected_reason="auth")
        yield self.persist(parent, edit, reaction, thread, unrelated, rejected)
        end = RoomPosition(None, (yield self.store.events.get_max_stream_ordering()))
        start = RoomPosition(None, 0)

        def ids(events):
            return [e.event_id for e in events]

        relations = self.store.events.get_relations
        room = self.events.room_id
        everything = yield relations(room, parent.event_id, None, None, end, None, 10, "b")
        self.assertEqual(ids(everything), [thread.event_id, reaction.event_id, edit.event_id])
        forwards = yield relations(room, parent.event_id, None, None, start, None, 10, "f")
        self.assertEqual(ids(forwards), [edit.event_id, reaction.event_id, thread.event_id])
        page = yield relations(room, parent.event_id, None, None, end, None, 2, "b")
        self.assertEqual(ids(page), [thread.event_id, reaction.event_id])
        rest = yield relations(room, parent.event_id, None, None, page[-1].position_before, None, 2, "b")
        self.assertEqual(ids(rest), [edit.event_id])
        until = yield relations(room, parent.event_id, None, None, end, everything[1].position_before, 10, "b")
        self.assertEqual(ids(until), [thread.event_id, reaction.event_id])
        by_type = yield relations(room, parent.event_id, "m.annotation", None, end, None, 10, "b")
        self.assertEqual(ids(by_type), [reaction.event_id])
        by_both = yield relations(room, parent.event_id, "m.thread", "m.reaction", end, None, 10, "b")
        self.assertEqual(by_both, [])
        other_room = yield relations("!other:x", parent.event_id, None, None, end, None, 10, "b")
        self.assertEqual(other_room, [])


class SqliteRelationStoreTests(RelationStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """Relations on SQLite."""


class PostgresRelationStoreTests(RelationStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """Relations on PostgreSQL."""
