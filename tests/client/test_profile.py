"""Profiles over HTTP: reading, setting and deleting fields, and member events following the changes."""

from twisted.internet import defer
from zope.interface import implementer

from mxref.client.profile.resource import ProfileResource
from mxref.client.profile.service import IRemoteProfiles, ProfileService
from mxref.errors import MatrixError
from tests.client.rooms_support import RoomApiTestCase, path_part
from tests.client.support import deferred_test

PROFILE = ("profile.yaml", "/profile/{userId}")
FIELD = ("profile.yaml", "/profile/{userId}/{keyName}")


@implementer(IRemoteProfiles)
class KnownRemoteProfiles:
    """Remote profiles answered from a dict, as a federation client would."""

    def __init__(self, profiles):
        self.profiles = profiles

    def get_profile(self, user_id, field=None):
        if user_id not in self.profiles:
            return defer.fail(MatrixError(404, "M_NOT_FOUND", "Profile not found"))
        return defer.succeed(self.profiles[user_id])


class ProfileTestCase(RoomApiTestCase):
    """Adds the profile endpoints."""

    remote_profiles = None

    def add_more_routes(self):
        self.profiles = ProfileService(
            self.store.accounts,
            self.store.rooms,
            self.store.events,
            self.creator,
            self.server_name,
            remote_profiles=self.remote_profiles,
        )
        self.harness.add_routes(ProfileResource(self.profiles, self.harness.authenticator))

    def field_path(self, user, key):
        """The path of one profile field of a RegisteredUser."""
        return f"/profile/{path_part(user.user_id)}/{key}"


class ProfileTests(ProfileTestCase):
    """Local profiles."""

    @deferred_test
    async def test_set_and_get(self):
        """A user sets a display name and avatar; anybody reads them, without a token."""
        await self.ok(
            "PUT",
            self.field_path(self.alice, "displayname"),
            {"displayname": "Alice A."},
            self.alice,
            spec=FIELD,
        )
        await self.ok(
            "PUT",
            self.field_path(self.alice, "avatar_url"),
            {"avatar_url": "mxc://test.example/abc"},
            self.alice,
        )
        profile = await self.ok("GET", f"/profile/{path_part(self.alice.user_id)}", spec=PROFILE)
        self.assertEqual(
            profile, {"displayname": "Alice A.", "avatar_url": "mxc://test.example/abc"}
        )
        name = await self.ok("GET", self.field_path(self.alice, "displayname"), spec=FIELD)
        self.assertEqual(name, {"displayname": "Alice A."})
        await self.ok(
            "DELETE", self.field_path(self.alice, "avatar_url"), user=self.alice, spec=FIELD
        )
        await self.fails(404, "M_NOT_FOUND", "GET", self.field_path(self.alice, "avatar_url"))
        await self.ok("DELETE", self.field_path(self.alice, "m.tz"), user=self.alice)

    @deferred_test
    async def test_membership_events_follow(self):
        """A new display name reaches the user's member event in each joined room, keeping the rest."""
        first = await self.create_room(self.alice)
        second = await self.create_room(self.bob, preset="public_chat")
        await self.join(self.alice, second)
        await self.ok("POST", f"/rooms/{path_part(second)}/leave", {}, self.alice)
        await self.ok(
            "PUT",
            self.field_path(self.alice, "avatar_url"),
            {"avatar_url": "mxc://test.example/a"},
            self.alice,
        )
        await self.ok(
            "PUT", self.field_path(self.alice, "displayname"), {"displayname": "Ally"}, self.alice
        )
        member = await self.ok(
            "GET",
            f"/rooms/{path_part(first)}/state/m.room.member/{path_part(self.alice.user_id)}",
            user=self.alice,
        )
        self.assertEqual(
            member,
            {"membership": "join", "displayname": "Ally", "avatar_url": "mxc://test.example/a"},
        )
        left = await self.ok(
            "GET",
            f"/rooms/{path_part(second)}/state/m.room.member/{path_part(self.alice.user_id)}",
            user=self.bob,
        )
        self.assertEqual(left, {"membership": "leave"})
        await self.ok(
            "PUT", self.field_path(self.alice, "displayname"), {"displayname": ""}, self.alice
        )
        member = await self.ok(
            "GET",
            f"/rooms/{path_part(first)}/state/m.room.member/{path_part(self.alice.user_id)}",
            user=self.alice,
        )
        self.assertEqual(member, {"membership": "join", "avatar_url": "mxc://test.example/a"})

    @deferred_test
    async def test_refused_changes(self):
        """Changing another user's profile, unsupported fields and bad values are refused."""
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            self.field_path(self.alice, "displayname"),
            {"displayname": "Mallory"},
            self.bob,
        )
        await self.fails(
            403, "M_FORBIDDEN", "DELETE", self.field_path(self.alice, "displayname"), user=self.bob
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            self.field_path(self.alice, "m.tz"),
            {"m.tz": "Europe/Paris"},
            self.alice,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "PUT",
            self.field_path(self.alice, "Bad-Key"),
            {"Bad-Key": 1},
            self.alice,
        )
        await self.fails(
            400,
            "M_MISSING_PARAM",
            "PUT",
            self.field_path(self.alice, "displayname"),
            {},
            self.alice,
        )
        await self.fails(
            400,
            "M_BAD_JSON",
            "PUT",
            self.field_path(self.alice, "displayname"),
            {"displayname": 3},
            self.alice,
        )
        await self.fails(
            400,
            "M_BAD_JSON",
            "PUT",
            self.field_path(self.alice, "displayname"),
            {"displayname": None},
            self.alice,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "PUT",
            self.field_path(self.alice, "displayname"),
            {"displayname": "x" * 300},
            self.alice,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "PUT",
            self.field_path(self.alice, "avatar_url"),
            {"avatar_url": "https://example.org/a.png"},
            self.alice,
        )
        await self.fails(
            400,
            "M_NOT_JSON",
            "PUT",
            self.field_path(self.alice, "displayname"),
            b"name",
            self.alice,
        )
        await self.fails(
            401,
            "M_MISSING_TOKEN",
            "PUT",
            self.field_path(self.alice, "displayname"),
            {"displayname": "x"},
        )

    @deferred_test
    async def test_unknown_users(self):
        """Unknown local users and (without federation) remote users are 404; bad IDs 400."""
        await self.fails(404, "M_NOT_FOUND", "GET", "/profile/%40nobody%3Atest.example")
        await self.fails(404, "M_NOT_FOUND", "GET", "/profile/%40nobody%3Atest.example/displayname")
        await self.fails(404, "M_NOT_FOUND", "GET", "/profile/%40someone%3Aelsewhere.example")
        await self.fails(400, "M_INVALID_PARAM", "GET", "/profile/nobody")
        await self.fails(404, "M_NOT_FOUND", "GET", self.field_path(self.bob, "org.example.colour"))


class RemoteProfileTests(ProfileTestCase):
    """Remote profiles through an IRemoteProfiles."""

    remote_profiles = KnownRemoteProfiles({"@zed:elsewhere.example": {"displayname": "Zed"}})

    @deferred_test
    async def test_remote_profile(self):
        """A remote user's profile comes from their server; a missing field is 404."""
        profile = await self.ok("GET", "/profile/%40zed%3Aelsewhere.example", spec=PROFILE)
        self.assertEqual(profile, {"displayname": "Zed"})
        field = await self.ok("GET", "/profile/%40zed%3Aelsewhere.example/displayname")
        self.assertEqual(field, {"displayname": "Zed"})
        await self.fails(
            404, "M_NOT_FOUND", "GET", "/profile/%40zed%3Aelsewhere.example/avatar_url"
        )
        await self.fails(404, "M_NOT_FOUND", "GET", "/profile/%40amy%3Aelsewhere.example")
