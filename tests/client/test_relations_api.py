"""``GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]``."""

from urllib.parse import quote

from tests.client.support import deferred_test
from tests.client.test_bundled_edits import RoomFixture, edit_of
from tests.schema import validate_response

V1 = "/_matrix/client/v1"


def reaction_to(event_id, key):
    """An ``m.annotation`` reaction to ``event_id``."""
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


class RelationsApiTests(RoomFixture):
    """Children of an event, paged and filtered, for users who may see them."""

    async def relations(self, event_id, suffix="", query="", token=None, code=200):
        path = f"/rooms/{self.room}/relations/{quote(event_id, safe='')}{suffix}{query}"
        response = await self.server.request("GET", V1 + path, token=token or self.alice_token)
        self.assertEqual(response.code, code, response.body)
        body = response.json()
        if code == 200:
            validate_response(
                "client-server/relations.yaml", "/rooms/{roomId}/relations/{eventId}", "get",
                200, body,
            )
        return body

    @deferred_test
    async def test_children_paged_newest_first(self):
        """Children come newest first in pages joined by next_batch; dir=f gives them oldest first."""
        parent = await self.send({"msgtype": "m.text", "body": "root"})
        children = [await self.send(edit_of(parent, "one"))]
        for key in ("a", "b", "c"):
            children.append(await self.send(reaction_to(parent, key), token=self.bob_token,
                                            event_type="m.reaction"))
        await self.send({"msgtype": "m.text", "body": "unrelated"})
        first = await self.relations(parent, query="?limit=3")
        self.assertEqual([e["event_id"] for e in first["chunk"]], children[::-1][:3])
        second = await self.relations(parent, query="?limit=3&from=" + quote(first["next_batch"]))
        self.assertEqual([e["event_id"] for e in second["chunk"]], children[:1])
        self.assertEqual(second["prev_batch"], first["next_batch"])
        self.assertNotIn("next_batch", second)
        forwards = await self.relations(parent, query="?dir=f&limit=10")
        self.assertEqual([e["event_id"] for e in forwards["chunk"]], children)
        recursed = await self.relations(parent, query="?recurse=true")
        self.assertEqual(recursed["recursion_depth"], 1)
        self.assertNotIn("recursion_depth", forwards)

    @deferred_test
    async def test_filtered_by_rel_type_and_event_type(self):
        """A relType (and eventType) in the path keeps only those children."""
        parent = await self.send({"msgtype": "m.text", "body": "root"})
        edit = await self.send(edit_of(parent, "one"))
        reaction = await self.send(reaction_to(parent, "x"), event_type="m.reaction")
        only_edits = await self.relations(parent, "/m.replace")
        self.assertEqual([e["event_id"] for e in only_edits["chunk"]], [edit])
        typed = await self.relations(parent, "/m.annotation/m.reaction")
        self.assertEqual([e["event_id"] for e in typed["chunk"]], [reaction])
        self.assertEqual((await self.relations(parent, "/m.annotation/m.sticker"))["chunk"], [])

    @deferred_test
    async def test_unknown_or_invisible_parent(self):
        """An unknown parent, or one in a room the user cannot read, gives 404 M_NOT_FOUND."""
        missing = await self.relations("$nope", code=404)
        self.assertEqual(missing["errcode"], "M_NOT_FOUND")
        _, carol_token = await self.server.user("carol")
        response = await self.server.request(
            "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, self.alice_token
        )
        private = response.json()["room_id"]
        self.room = quote(private, safe="")
        secret = await self.send({"msgtype": "m.text", "body": "secret"})
        hidden = await self.relations(secret, token=carol_token, code=404)
        self.assertEqual(hidden["errcode"], "M_NOT_FOUND")
