"""Module hooks on events received over federation: the event check runs after the
authorization rules, a refused remote event is soft-failed (kept in the graph, never shown),
and listeners hear accepted remote events."""

import os

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.federation.receiver.pipeline import ACCEPTED, SOFT_FAILED, PduReceiver
from mxref.modules.api import ModuleApi
from mxref.modules.hooks import ModuleHooks
from mxref.modules.loader import load_modules
from mxref.storage.records import RoomPosition
from mxref.testing.homeserver import test_config
from tests.federation.receiver_support import REMOTE, ReceiverFixture
from tests.modules.sample_modules import journal
from tests.modules.support import make_example_module_importable, module_entry, sample

make_example_module_importable()


class RemoteEventCheckTests(ReceiverFixture, unittest.TestCase):
    """The example module and a recorder on our server; a remote user talks in our room."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        entries = [
            module_entry(
                sample("WordChecker"), {"journal": self.id(), "replace": {"old": "a", "new": "b"}}
            ),
            module_entry("mxref_example_module.PatternRejecter", {"pattern": "(?i)buy cheap"}),
            module_entry(sample("EventRecorder")),
        ]
        config = test_config(os.path.abspath(self.mktemp()), overrides={"modules": entries})
        self.hooks = ModuleHooks(reactor)
        self.hooks.install(load_modules(config.modules, self.module_api))
        self.hooks.follow_persisted_events(self.notifier, self.store.events)
        self.receiver = PduReceiver(
            self.store.events,
            self.store.rooms,
            self.state_reader,
            self.persister,
            self.keyring,
            self.client,
            self.acl,
            module_hooks=self.hooks,
        )
        outcome = yield self.join_bob()
        self.assertEqual(outcome.status, ACCEPTED)

    def module_api(self, name):
        """A ModuleApi over this fixture's services."""
        return ModuleApi(
            name, self.server_name, reactor, self.creator, self.store.events, None, None
        )

    @defer.inlineCallbacks
    def visible_event_ids(self):
        chunk = yield self.store.events.get_room_events_stream(
            self.room_id, RoomPosition(0, 0), None, 1000, "f"
        )
        return [e.event_id for e in chunk]

    @defer.inlineCallbacks
    def send_from_bob(self, body):
        event_id, pdu = self.remote.build(
            self.bob, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        return outcome

    @defer.inlineCallbacks
    def test_refused_remote_event_soft_failed(self):
        """A remote message the example module refuses is stored soft-failed and hidden from clients."""
        outcome = yield self.send_from_bob("buy cheap watches")
        self.assertEqual(outcome.status, SOFT_FAILED)
        stored = yield self.store.events.get_event(outcome.event_id, allow_rejected=True)
        self.assertTrue(stored.soft_failed)
        self.assertNotIn(outcome.event_id, (yield self.visible_event_ids()))
        self.assertEqual(self.hooks.modules[1].module.rejected, 1)

    @defer.inlineCallbacks
    def test_allowed_remote_event_unchanged_and_heard(self):
        """An allowed remote message keeps its signed content (replacements are ignored) and reaches listeners."""
        outcome = yield self.send_from_bob("a fine day")
        self.assertEqual(outcome.status, ACCEPTED)
        stored = yield self.store.events.get_event(outcome.event_id)
        self.assertEqual(stored.pdu["content"]["body"], "a fine day")
        self.assertIn(
            ("wordchecker", "check_event", ("m.room.message", REMOTE, "a fine day")),
            journal(self.id()),
        )
        recorder = self.hooks.modules[2].module
        for _ in range(200):
            if any(e["event_id"] == outcome.event_id for e in recorder.events):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertIn(outcome.event_id, [e["event_id"] for e in recorder.events])

    @defer.inlineCallbacks
    def test_unauthorised_event_never_reaches_modules(self):
        """An event the authorization rules reject is rejected before any module is asked."""
        stranger = f"@stranger:{REMOTE}"
        event_id, pdu = self.remote.build(stranger, "m.room.message", {"body": "buy cheap"})
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertNotIn(outcome.status, (ACCEPTED,))
        self.assertEqual(self.hooks.modules[1].module.checked, 0)
