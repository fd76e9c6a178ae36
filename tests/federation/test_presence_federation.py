"""Presence crossing servers: ``m.presence`` EDUs between two in-memory homeservers."""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mxref.testing.client import InMemoryClient
from mxref.testing.homeserver import make_federated_homeservers
from tests.federation.test_in_memory_federation import eventually
from tests.schema import validate_schema

STATUS = "/_matrix/client/v3/presence/{}/status"


def presence_in(sync):
    """``{sender: content}`` of a sync response's presence events, checked against the schema."""
    found = {}
    for event in sync["presence"]["events"]:
        validate_schema("event-schemas/schema/m.presence.yaml", event)
        found[event["sender"]] = event["content"]
    return found


class PresenceFederationTests(unittest.TestCase):
    """alice on a.test and bob on b.test share a room; carol on b.test shares none."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network, self.servers = yield make_federated_homeservers(self, reactor, ["a.test", "b.test"])
        self.alice = InMemoryClient(self.servers["a.test"], reactor)
        self.bob = InMemoryClient(self.servers["b.test"], reactor)
        self.carol = InMemoryClient(self.servers["b.test"], reactor)
        yield self.alice.register("alice")
        yield self.bob.register("bob")
        yield self.carol.register("carol")
        self.room_id = yield self.alice.create_room(preset="public_chat")
        yield self.bob.join(self.room_id, via=["a.test"])

    @defer.inlineCallbacks
    def test_presence_crosses_to_the_other_server(self):
        """alice's PUT status reaches bob's /sync and GET on b.test (as a schema-valid m.presence
        EDU); carol sees nothing."""
        sent = []
        queue = self.servers["a.test"].federation_sender.queue("b.test")
        original = queue.send_edu

        def record(edu_type, content, *args, **kwargs):
            sent.append({"edu_type": edu_type, "content": content})
            return original(edu_type, content, *args, **kwargs)

        queue.send_edu = record
        yield self.alice.request(
            "PUT", STATUS.format("@alice:a.test"), {"presence": "online", "status_msg": "from a"}
        )

        @defer.inlineCallbacks
        def bob_sees_alice():
            sync = yield self.bob.sync()
            return presence_in(sync).get("@alice:a.test")

        content = yield eventually(bob_sees_alice)
        self.assertEqual((content["presence"], content["status_msg"]), ("online", "from a"))
        self.assertIn("last_active_ago", content)
        got = yield self.bob.request("GET", STATUS.format("@alice:a.test"))
        self.assertEqual((got["presence"], got["status_msg"]), ("online", "from a"))
        [edu] = [e for e in sent if e["edu_type"] == "m.presence"]
        validate_schema("api/server-server/definitions/event-schemas/m.presence.yaml", edu)
        self.assertEqual([item["user_id"] for item in edu["content"]["push"]], ["@alice:a.test"])
        carol_sync = yield self.carol.sync()
        self.assertNotIn("@alice:a.test", presence_in(carol_sync))

    @defer.inlineCallbacks
    def test_sync_presence_crosses_back(self):
        """bob coming online by syncing on b.test is seen by alice on a.test, and so is his change."""
        yield self.bob.sync()

        @defer.inlineCallbacks
        def alice_sees_bob(presence):
            sync = yield self.alice.sync()
            content = presence_in(sync).get("@bob:b.test")
            return content is not None and content["presence"] == presence

        yield eventually(lambda: alice_sees_bob("online"))
        yield self.bob.request("PUT", STATUS.format("@bob:b.test"), {"presence": "unavailable"})
        yield eventually(lambda: alice_sees_bob("unavailable"))

    @defer.inlineCallbacks
    def test_forged_and_unshared_presence_is_ignored(self):
        """b.test ignores presence a.test pushes for another server's user or a user sharing no room."""
        b_server = self.servers["b.test"]
        yield self.bob.sync()
        forged = {
            "edu_type": "m.presence",
            "content": {
                "push": [
                    {"user_id": "@bob:b.test", "presence": "offline", "last_active_ago": 5},
                    {"user_id": "@zed:c.test", "presence": "online", "last_active_ago": 5},
                    {"user_id": "@stranger:a.test", "presence": "online", "last_active_ago": 5},
                    {"user_id": "@alice:a.test", "presence": "online", "last_active_ago": 5,
                     "currently_active": True, "status_msg": "ok"},
                ]
            },
        }
        taken = yield b_server.edu_router.route("a.test", forged)
        self.assertTrue(taken)
        tracker = b_server.presence_tracker
        self.assertIsNone(tracker.get("@zed:c.test"))
        self.assertIsNone(tracker.get("@stranger:a.test"))
        self.assertEqual(tracker.get("@bob:b.test").presence, "online")
        alice = tracker.get("@alice:a.test")
        self.assertEqual((alice.presence, alice.status_msg, alice.currently_active), ("online", "ok", True))
