"""Account data endpoints over HTTP on a real SQLite store; their appearance in /sync is in test_sync."""

from twisted.trial import unittest

from mxref.client.account_data.resource import AccountDataResource
from mxref.client.account_data.service import ACCOUNT_DATA_STREAM, AccountDataService
from mxref.notifier import Notifier
from tests.client.support import ClientApiHarness, deferred_test
from tests.schema import validate_response

API = "client-server/account-data.yaml"
GLOBAL = "/user/{userId}/account_data/{type}"
PER_ROOM = "/user/{userId}/rooms/{roomId}/account_data/{type}"
ROOM = "!room:test.example"


class AccountDataTests(unittest.TestCase):
    """``GET``/``PUT`` of global and per-room account data."""

    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self)
        self.notifier = Notifier(self.harness.clock)
        self.notified = []
        self.notifier.subscribe(self.notified.append)
        self.harness.add_routes(
            AccountDataResource(
                AccountDataService(self.harness.store.client_data, self.notifier),
                self.harness.authenticator,
            )
        )
        self.alice = await self.harness.register_user("alice")
        self.bob = await self.harness.register_user("bob")

    def global_path(self, user, data_type, version="v3"):
        return f"/_matrix/client/{version}/user/{user.user_id}/account_data/{data_type}"

    def room_path(self, user, data_type, room_id=ROOM):
        return f"/_matrix/client/v3/user/{user.user_id}/rooms/{room_id}/account_data/{data_type}"

    @deferred_test
    async def test_global_round_trip(self):
        """What a user PUTs they GET back, replaced by a later PUT; r0 paths work too."""
        put = await self.harness.request(
            "PUT",
            self.global_path(self.alice, "org.example.config"),
            {"colour": "red"},
            token=self.alice.access_token,
        )
        self.assertEqual((put.code, put.json()), (200, {}))
        validate_response(API, GLOBAL, "put", 200, put.json())
        await self.harness.request(
            "PUT",
            self.global_path(self.alice, "org.example.config", "r0"),
            {"colour": "blue"},
            token=self.alice.access_token,
        )
        got = await self.harness.request(
            "GET", self.global_path(self.alice, "org.example.config"), token=self.alice.access_token
        )
        self.assertEqual((got.code, got.json()), (200, {"colour": "blue"}))
        validate_response(API, GLOBAL, "get", 200, got.json())

    @deferred_test
    async def test_per_room_is_separate_from_global(self):
        """Per-room data is kept per room and apart from global data of the same type."""
        await self.harness.request(
            "PUT",
            self.room_path(self.alice, "m.tag"),
            {"tags": {"u.work": {}}},
            token=self.alice.access_token,
        )
        got = await self.harness.request(
            "GET", self.room_path(self.alice, "m.tag"), token=self.alice.access_token
        )
        self.assertEqual((got.code, got.json()), (200, {"tags": {"u.work": {}}}))
        validate_response(API, PER_ROOM, "get", 200, got.json())
        other_room = await self.harness.request(
            "GET",
            self.room_path(self.alice, "m.tag", "!other:test.example"),
            token=self.alice.access_token,
        )
        self.assertEqual((other_room.code, other_room.json()["errcode"]), (404, "M_NOT_FOUND"))
        global_ = await self.harness.request(
            "GET", self.global_path(self.alice, "m.tag"), token=self.alice.access_token
        )
        self.assertEqual((global_.code, global_.json()["errcode"]), (404, "M_NOT_FOUND"))
        validate_response(API, GLOBAL, "get", 404, global_.json())

    @deferred_test
    async def test_other_users_data_is_forbidden(self):
        """Reading or writing another user's account data gives 403 M_FORBIDDEN."""
        await self.harness.request(
            "PUT",
            self.global_path(self.bob, "org.example.secret"),
            {"x": 1},
            token=self.bob.access_token,
        )
        for method, path, body in [
            ("GET", self.global_path(self.bob, "org.example.secret"), None),
            ("PUT", self.global_path(self.bob, "org.example.secret"), {"x": 2}),
            ("GET", self.room_path(self.bob, "m.tag"), None),
            ("PUT", self.room_path(self.bob, "m.tag"), {}),
        ]:
            response = await self.harness.request(method, path, body, token=self.alice.access_token)
            self.assertEqual(
                (response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"), (method, path)
            )
        got = await self.harness.request(
            "GET", self.global_path(self.bob, "org.example.secret"), token=self.bob.access_token
        )
        self.assertEqual(got.json(), {"x": 1})

    @deferred_test
    async def test_server_managed_types_refused(self):
        """PUT of m.fully_read or m.push_rules answers 405 M_BAD_JSON, globally and per room."""
        for path in (
            self.global_path(self.alice, "m.fully_read"),
            self.global_path(self.alice, "m.push_rules"),
            self.room_path(self.alice, "m.fully_read"),
        ):
            response = await self.harness.request(
                "PUT", path, {"event_id": "$e"}, token=self.alice.access_token
            )
            self.assertEqual((response.code, response.json()["errcode"]), (405, "M_BAD_JSON"), path)
            validate_response(API, GLOBAL, "put", 405, response.json())

    @deferred_test
    async def test_bad_bodies_and_room_ids(self):
        """A body that is not a JSON object is refused; so is a malformed room ID (M_INVALID_PARAM)."""
        not_object = await self.harness.request(
            "PUT", self.global_path(self.alice, "x.y"), [1, 2], token=self.alice.access_token
        )
        self.assertEqual((not_object.code, not_object.json()["errcode"]), (400, "M_BAD_JSON"))
        not_json = await self.harness.request(
            "PUT", self.global_path(self.alice, "x.y"), b"{", token=self.alice.access_token
        )
        self.assertEqual((not_json.code, not_json.json()["errcode"]), (400, "M_NOT_JSON"))
        for method, body in (("GET", None), ("PUT", {})):
            response = await self.harness.request(
                method,
                self.room_path(self.alice, "m.tag", "not-a-room"),
                body,
                token=self.alice.access_token,
            )
            self.assertEqual((response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"))
        validate_response(API, PER_ROOM, "get", 400, response.json())

    @deferred_test
    async def test_writes_notify_the_owner(self):
        """Each write announces its account-data stream position for the owning user, so /sync wakes."""
        await self.harness.request(
            "PUT", self.global_path(self.alice, "a.b"), {}, token=self.alice.access_token
        )
        await self.harness.request(
            "PUT", self.room_path(self.alice, "a.b"), {}, token=self.alice.access_token
        )
        self.assertEqual(
            [(n.stream_name, n.user_ids) for n in self.notified],
            [(ACCOUNT_DATA_STREAM, frozenset({self.alice.user_id}))] * 2,
        )
        self.assertLess(self.notified[0].position, self.notified[1].position)
        self.assertEqual(
            self.notifier.current_position(ACCOUNT_DATA_STREAM),
            await self.harness.store.client_data.get_account_data_position(),
        )
