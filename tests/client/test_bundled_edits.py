"""Edits are bundled with the event they replace, on every endpoint that serves room events.

Client-Server API "Event replacements" > "Server-side aggregation of m.replace relationships".
"""

from urllib.parse import quote

from twisted.internet import reactor
from twisted.trial import unittest

from mxref.testing.homeserver import make_test_homeserver
from tests.client.support import deferred_test
from tests.modules.support import ServerDriver

V3 = "/_matrix/client/v3"


def edit_of(original_id, body):
    """The content of an edit of ``original_id`` to ``body``."""
    return {
        "msgtype": "m.text",
        "body": "* " + body,
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_id},
    }


class RoomFixture(unittest.TestCase):
    """A whole test homeserver with Alice's public room that Bob has joined."""

    @deferred_test
    async def setUp(self):
        homeserver = await make_test_homeserver(self, reactor)
        self.server = ServerDriver(homeserver)
        self.alice, self.alice_token = await self.server.user("alice")
        self.bob, self.bob_token = await self.server.user("bob")
        response = await self.server.create_room(self.alice_token, preset="public_chat")
        self.room_id = response.json()["room_id"]
        self.room = quote(self.room_id, safe="")
        await self.call("POST", f"/join/{self.room}", {}, self.bob_token)
        self.txn = 0

    async def call(self, method, path, body=None, token=None):
        response = await self.server.request(method, V3 + path, body, token or self.alice_token)
        self.assertEqual(response.code, 200, response.body)
        return response.json()

    async def send(self, content, token=None, event_type="m.room.message"):
        self.txn += 1
        answer = await self.call(
            "PUT", f"/rooms/{self.room}/send/{event_type}/t{self.txn}", content, token
        )
        return answer["event_id"]

    async def served(self, event_id):
        """The event as /event, /context, /messages and /sync serve it, by endpoint name."""
        quoted = quote(event_id, safe="")
        found = {"event": await self.call("GET", f"/rooms/{self.room}/event/{quoted}")}
        context = await self.call("GET", f"/rooms/{self.room}/context/{quoted}?limit=0")
        found["context"] = context["event"]
        page = await self.call("GET", f"/rooms/{self.room}/messages?dir=b&limit=50")
        found["messages"] = [e for e in page["chunk"] if e["event_id"] == event_id][0]
        sync = await self.call(
            "GET", "/sync?filter=" + quote('{"room":{"timeline":{"limit":50}}}')
        )
        timeline = sync["rooms"]["join"][self.room_id]["timeline"]["events"]
        found["sync"] = [e for e in timeline if e["event_id"] == event_id][0]
        return found

    def bundled(self, served):
        """``{endpoint: bundled edit event ID or None}``."""
        return {
            name: event["unsigned"].get("m.relations", {}).get("m.replace", {}).get("event_id")
            for name, event in served.items()
        }



class BundledEditTests(RoomFixture):
    """Originals carry their latest valid edit under unsigned.m.relations.m.replace."""

    @deferred_test
    async def test_latest_edit_bundled_everywhere(self):
        """The most recent edit is bundled whole with the original on /event, /context, /messages and /sync."""
        original = await self.send({"msgtype": "m.text", "body": "helo"})
        await self.send(edit_of(original, "hello"))
        latest = await self.send(edit_of(original, "hello!"))
        served = await self.served(original)
        self.assertEqual(self.bundled(served), dict.fromkeys(served, latest))
        bundle = served["event"]["unsigned"]["m.relations"]["m.replace"]
        self.assertEqual(bundle["content"], edit_of(original, "hello!"))
        self.assertEqual((bundle["sender"], bundle["type"]), (self.alice, "m.room.message"))
        self.assertEqual(served["event"]["content"]["body"], "helo")
        self.assertNotIn("room_id", served["sync"]["unsigned"]["m.relations"]["m.replace"])
        edit_served = await self.served(latest)
        self.assertEqual(self.bundled(edit_served), dict.fromkeys(edit_served))

    @deferred_test
    async def test_invalid_edits_not_bundled(self):
        """Edits by another user, of another type or without m.new_content are not bundled."""
        original = await self.send({"msgtype": "m.text", "body": "mine"})
        await self.send(edit_of(original, "bob's"), token=self.bob_token)
        await self.send(edit_of(original, "sticker"), event_type="m.sticker")
        no_new_content = edit_of(original, "x")
        del no_new_content["m.new_content"]
        await self.send(no_new_content)
        served = await self.served(original)
        self.assertEqual(self.bundled(served), dict.fromkeys(served))

    @deferred_test
    async def test_redacted_edit_skipped_and_redacted_original_unbundled(self):
        """A redacted latest edit falls back to the previous one; a redacted original has no bundle."""
        original = await self.send({"msgtype": "m.text", "body": "helo"})
        first = await self.send(edit_of(original, "hello"))
        second = await self.send(edit_of(original, "hullo"))
        await self.call("PUT", f"/rooms/{self.room}/redact/{quote(second, safe='')}/r1", {})
        served = await self.served(original)
        self.assertEqual(self.bundled(served), dict.fromkeys(served, first))
        await self.call("PUT", f"/rooms/{self.room}/redact/{quote(original, safe='')}/r2", {})
        served = await self.served(original)
        self.assertEqual(self.bundled(served), dict.fromkeys(served))
