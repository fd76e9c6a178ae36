"""Room aliases, directory visibility and ``/publicRooms`` over HTTP."""

from twisted.internet import defer
from zope.interface import implementer

from mxref.client.directory.resource import DirectoryResource
from mxref.client.directory.service import RoomDirectory
from mxref.errors import MatrixError
from mxref.rooms.interfaces import IRemoteRooms, NoRemoteRooms
from mxref.rooms.membership import MembershipUpdater
from tests.client.rooms_support import RoomApiTestCase, path_part
from tests.client.support import deferred_test

ALIAS_SPEC = ("directory.yaml", "/directory/room/{roomAlias}")
PUBLIC = ("list_public_rooms.yaml", "/publicRooms")
LIST = ("list_public_rooms.yaml", "/directory/list/room/{roomId}")


class DirectoryTestCase(RoomApiTestCase):
    """Adds the directory endpoints."""

    allow_public_rooms_without_auth = False

    def remote_rooms(self):
        """The IRemoteRooms remote aliases are resolved through."""
        return NoRemoteRooms()

    def add_more_routes(self):
        membership = MembershipUpdater(
            self.store.events,
            self.store.rooms,
            self.store.accounts,
            self.creator,
            self.remote_rooms(),
            self.server_name,
        )
        self.directory = RoomDirectory(
            self.store.events, self.store.rooms, membership, self.server_name
        )
        self.harness.add_routes(
            DirectoryResource(
                self.directory,
                self.harness.authenticator,
                self.server_name,
                allow_public_rooms_without_auth=self.allow_public_rooms_without_auth,
            )
        )


def alias_path(alias):
    return f"/directory/room/{path_part(alias)}"


class AliasTests(DirectoryTestCase):
    """``/directory/room/{roomAlias}`` and ``/rooms/{roomId}/aliases``."""

    @deferred_test
    async def test_create_resolve_delete(self):
        """A member creates an alias, anybody resolves it, the creator deletes it."""
        room_id = await self.create_room(self.alice)
        alias = "#hall:test.example"
        await self.ok("PUT", alias_path(alias), {"room_id": room_id}, self.alice, spec=ALIAS_SPEC)
        resolved = await self.ok("GET", alias_path(alias), spec=ALIAS_SPEC)
        self.assertEqual(resolved, {"room_id": room_id, "servers": ["test.example"]})
        aliases = await self.ok(
            "GET",
            f"/rooms/{path_part(room_id)}/aliases",
            user=self.alice,
            spec=("directory.yaml", "/rooms/{roomId}/aliases"),
        )
        self.assertEqual(aliases, {"aliases": [alias]})
        await self.fails(
            409, "M_UNKNOWN", "PUT", alias_path(alias), {"room_id": room_id}, self.alice
        )
        await self.ok("DELETE", alias_path(alias), user=self.alice, spec=ALIAS_SPEC)
        await self.fails(404, "M_NOT_FOUND", "GET", alias_path(alias))
        await self.fails(404, "M_NOT_FOUND", "DELETE", alias_path(alias), user=self.alice)

    @deferred_test
    async def test_alias_from_create_room(self):
        """An alias given to createRoom resolves to the room."""
        room_id = await self.create_room(self.alice, room_alias_name="lounge")
        resolved = await self.ok("GET", alias_path("#lounge:test.example"), user=self.bob)
        self.assertEqual(resolved["room_id"], room_id)

    @deferred_test
    async def test_who_may_delete(self):
        """Another member without power may not delete an alias; the room's admin may."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        await self.join(self.bob, room_id)
        await self.ok("PUT", alias_path("#bobs:test.example"), {"room_id": room_id}, self.bob)
        await self.ok("PUT", alias_path("#alices:test.example"), {"room_id": room_id}, self.alice)
        await self.fails(
            403, "M_FORBIDDEN", "DELETE", alias_path("#alices:test.example"), user=self.bob
        )
        await self.ok("DELETE", alias_path("#bobs:test.example"), user=self.alice)

    @deferred_test
    async def test_bad_requests(self):
        """Remote or malformed aliases, unknown rooms, non-members and bad bodies are refused."""
        room_id = await self.create_room(self.alice)
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "PUT",
            alias_path("#x:elsewhere.example"),
            {"room_id": room_id},
            self.alice,
        )
        await self.fails(
            400, "M_INVALID_PARAM", "PUT", alias_path("nohash"), {"room_id": room_id}, self.alice
        )
        await self.fails(400, "M_INVALID_PARAM", "GET", alias_path("nohash"))
        await self.fails(
            404,
            "M_NOT_FOUND",
            "PUT",
            alias_path("#x:test.example"),
            {"room_id": "!no:test.example"},
            self.alice,
        )
        await self.fails(
            403, "M_FORBIDDEN", "PUT", alias_path("#x:test.example"), {"room_id": room_id}, self.bob
        )
        await self.fails(
            400, "M_MISSING_PARAM", "PUT", alias_path("#x:test.example"), {}, self.alice
        )
        await self.fails(
            400, "M_BAD_JSON", "PUT", alias_path("#x:test.example"), {"room_id": 1}, self.alice
        )
        await self.fails(
            400, "M_NOT_JSON", "PUT", alias_path("#x:test.example"), b"room", self.alice
        )
        await self.fails(
            401, "M_MISSING_TOKEN", "PUT", alias_path("#x:test.example"), {"room_id": room_id}
        )
        await self.fails(
            403, "M_FORBIDDEN", "GET", f"/rooms/{path_part(room_id)}/aliases", user=self.bob
        )
        await self.fails(404, "M_NOT_FOUND", "GET", alias_path("#x:elsewhere.example"))


class PublicRoomsTests(DirectoryTestCase):
    """``/directory/list/room/{roomId}`` and ``/publicRooms``."""

    @deferred_test
    async def test_publish_and_list(self):
        """Public rooms are listed with the spec's fields; a withdrawn room disappears."""
        public = await self.create_room(
            self.alice,
            visibility="public",
            name="Town square",
            topic="news",
            room_alias_name="square",
        )
        private = await self.create_room(self.alice, name="Back room")
        await self.join(self.bob, public)
        listed = await self.ok("GET", "/publicRooms", user=self.bob, spec=PUBLIC)
        self.assertEqual(listed["total_room_count_estimate"], 1)
        self.assertEqual(
            listed["chunk"],
            [
                {
                    "room_id": public,
                    "num_joined_members": 2,
                    "world_readable": False,
                    "guest_can_join": False,
                    "join_rule": "public",
                    "name": "Town square",
                    "topic": "news",
                    "canonical_alias": "#square:test.example",
                }
            ],
        )
        visibility = await self.ok("GET", f"/directory/list/room/{path_part(private)}", spec=LIST)
        self.assertEqual(visibility, {"visibility": "private"})
        await self.ok(
            "PUT",
            f"/directory/list/room/{path_part(private)}",
            {"visibility": "public"},
            self.alice,
            spec=LIST,
        )
        self.assertEqual(len((await self.ok("GET", "/publicRooms", user=self.bob))["chunk"]), 2)
        await self.ok(
            "PUT",
            f"/directory/list/room/{path_part(public)}",
            {"visibility": "private"},
            self.alice,
        )
        listed = await self.ok("GET", "/publicRooms", user=self.bob)
        self.assertEqual([room["room_id"] for room in listed["chunk"]], [private])

    @deferred_test
    async def test_paging_and_search(self):
        """limit and since page through the rooms; generic_search_term and room_types filter them."""
        ids = []
        for n in range(3):
            ids.append(await self.create_room(self.alice, visibility="public", name=f"Room {n}"))
        space = await self.create_room(
            self.alice, visibility="public", name="Space", creation_content={"type": "m.space"}
        )
        first = await self.ok("POST", "/publicRooms", {"limit": 2}, self.bob, spec=PUBLIC)
        self.assertEqual(len(first["chunk"]), 2)
        self.assertNotIn("prev_batch", first)
        second = await self.ok(
            "GET",
            "/publicRooms",
            user=self.bob,
            query={"limit": 2, "since": first["next_batch"]},
            spec=PUBLIC,
        )
        self.assertEqual(len(second["chunk"]), 2)
        self.assertNotIn("next_batch", second)
        self.assertIn("prev_batch", second)
        self.assertEqual(
            {r["room_id"] for r in first["chunk"] + second["chunk"]}, set(ids) | {space}
        )
        found = await self.ok(
            "POST",
            "/publicRooms",
            {"filter": {"generic_search_term": "room 1"}},
            self.bob,
            spec=PUBLIC,
        )
        self.assertEqual([r["room_id"] for r in found["chunk"]], [ids[1]])
        spaces = await self.ok(
            "POST", "/publicRooms", {"filter": {"room_types": ["m.space"]}}, self.bob, spec=PUBLIC
        )
        self.assertEqual(
            [(r["room_id"], r["room_type"]) for r in spaces["chunk"]], [(space, "m.space")]
        )
        plain = await self.ok("POST", "/publicRooms", {"filter": {"room_types": [None]}}, self.bob)
        self.assertEqual({r["room_id"] for r in plain["chunk"]}, set(ids))

    @deferred_test
    async def test_bad_requests(self):
        """Bad tokens, types, visibilities, unknown rooms and missing tokens are refused."""
        room_id = await self.create_room(self.alice)
        await self.fails(401, "M_MISSING_TOKEN", "GET", "/publicRooms")
        await self.fails(
            400, "M_INVALID_PARAM", "GET", "/publicRooms", user=self.bob, query={"since": "x"}
        )
        await self.fails(
            400, "M_INVALID_PARAM", "GET", "/publicRooms", user=self.bob, query={"limit": "many"}
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "GET",
            "/publicRooms",
            user=self.bob,
            query={"server": "elsewhere.example"},
        )
        await self.fails(400, "M_BAD_JSON", "POST", "/publicRooms", {"limit": "2"}, self.bob)
        await self.fails(400, "M_BAD_JSON", "POST", "/publicRooms", {"filter": []}, self.bob)
        await self.fails(
            400,
            "M_BAD_JSON",
            "POST",
            "/publicRooms",
            {"filter": {"generic_search_term": 3}},
            self.bob,
        )
        await self.fails(
            400, "M_BAD_JSON", "POST", "/publicRooms", {"filter": {"room_types": [3]}}, self.bob
        )
        await self.fails(400, "M_NOT_JSON", "POST", "/publicRooms", b"?", self.bob)
        await self.fails(
            404, "M_NOT_FOUND", "GET", f"/directory/list/room/{path_part('!no:test.example')}"
        )
        await self.fails(
            404,
            "M_NOT_FOUND",
            "PUT",
            f"/directory/list/room/{path_part('!no:test.example')}",
            {"visibility": "public"},
            self.alice,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "PUT",
            f"/directory/list/room/{path_part(room_id)}",
            {"visibility": "loud"},
            self.alice,
        )
        await self.fails(
            400,
            "M_BAD_JSON",
            "PUT",
            f"/directory/list/room/{path_part(room_id)}",
            {"visibility": 1},
            self.alice,
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            f"/directory/list/room/{path_part(room_id)}",
            {"visibility": "public"},
            self.bob,
        )


class PublicRoomsWithoutAuthTests(DirectoryTestCase):
    """``allow_public_rooms_without_auth``."""

    allow_public_rooms_without_auth = True

    @deferred_test
    async def test_listing_without_token(self):
        """GET /publicRooms works without a token; POST still needs one; a bad token is still refused."""
        room_id = await self.create_room(self.alice, visibility="public")
        listed = await self.ok("GET", "/publicRooms", spec=PUBLIC)
        self.assertEqual([r["room_id"] for r in listed["chunk"]], [room_id])
        await self.fails(401, "M_MISSING_TOKEN", "POST", "/publicRooms", {})
        await self.fails(401, "M_UNKNOWN_TOKEN", "GET", "/publicRooms", token="bogus")


@implementer(IRemoteRooms)
class KnownRemoteAliases(NoRemoteRooms):
    """Answers alias queries from a dict, as the federation layer would from other servers."""

    def __init__(self, aliases):
        self.aliases = aliases
        self.asked = []

    def resolve_alias(self, alias):
        self.asked.append(alias)
        if alias not in self.aliases:
            return defer.fail(MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found"))
        return defer.succeed(self.aliases[alias])


class RemoteAliasTests(DirectoryTestCase):
    """Aliases of other servers are asked of those servers."""

    def remote_rooms(self):
        self.remote = KnownRemoteAliases(
            {"#far:elsewhere.example": ("!far:elsewhere.example", ["elsewhere.example"])}
        )
        return self.remote

    @deferred_test
    async def test_remote_alias(self):
        """A remote alias resolves through IRemoteRooms; an unknown one is 404; local ones are not asked."""
        resolved = await self.ok("GET", alias_path("#far:elsewhere.example"), spec=ALIAS_SPEC)
        self.assertEqual(
            resolved, {"room_id": "!far:elsewhere.example", "servers": ["elsewhere.example"]}
        )
        await self.fails(404, "M_NOT_FOUND", "GET", alias_path("#near:elsewhere.example"))
        await self.fails(404, "M_NOT_FOUND", "GET", alias_path("#near:test.example"))
        self.assertEqual(self.remote.asked, ["#far:elsewhere.example", "#near:elsewhere.example"])
