"""Junk sent to every room, directory, profile and receipt endpoint gets a Matrix error, never a 500."""

from urllib.parse import urlencode

from tests.client.rooms_support import V3, FullRoomApiTestCase, path_part
from tests.client.support import deferred_test

#: Paths of the endpoints the account harness registers (not tested here).
HARNESS_PREFIXES = tuple(
    V3 + suffix
    for suffix in (
        "/login",
        "/logout",
        "/register",
        "/account",
        "/devices",
        "/delete_devices",
        "/capabilities",
    )
)

#: Every field any of these endpoints reads from a body.
FIELDS = (
    "visibility",
    "room_alias_name",
    "name",
    "topic",
    "invite",
    "room_version",
    "creation_content",
    "initial_state",
    "preset",
    "is_direct",
    "power_level_content_override",
    "invite_3pid",
    "user_id",
    "reason",
    "room_id",
    "typing",
    "timeout",
    "thread_id",
    "m.fully_read",
    "m.read",
    "m.read.private",
    "displayname",
    "avatar_url",
    "limit",
    "since",
    "filter",
    "include_all_networks",
    "third_party_instance_id",
    "id_server",
)

JUNK_VALUES = (None, -1, 10**30, "", [], {"a": 1}, [None], True)

JUNK_BODIES = (b"", b"null", b"[]", b'"x"', b"{", b"\xff\xfe", b'{"a": NaN}', b"{}")

QUERY_NAMES = (
    "dir",
    "from",
    "to",
    "limit",
    "filter",
    "format",
    "at",
    "membership",
    "not_membership",
    "since",
    "server",
    "via",
    "server_name",
)

QUERY_VALUES = (
    "",
    "x",
    "-1",
    "99999999999999999999999",
    "{}",
    "[]",
    "t99999999999999999999_1",
    "s-1",
    '{"types": 3}',
    '{"limit": 0}',
)


class JunkInputTests(FullRoomApiTestCase):
    """No input makes these endpoints fail with a server error."""

    #: The corpus takes about a minute alone; on a loaded CI machine (trial -j) give it room.
    timeout = 600

    def routes(self):
        """(method, v3 path pattern) of every endpoint of this package: those on the harness's
        JsonResource except the account and meta endpoints the harness brings itself."""
        return sorted(
            (route.method, route.pattern)
            for route in self.harness.json_resource._routes
            if route.pattern.startswith(V3) and not route.pattern.startswith(HARNESS_PREFIXES)
        )

    async def expect_no_server_error(self, method, path, body=None):
        response = await self.harness.request(
            method, path, body=body, token=self.alice.access_token
        )
        self.assertLess(response.code, 500, f"{method} {path} {body!r}: {response.body!r}")
        self.assertIn(
            "errcode" if response.code >= 400 else "",
            response.json() if response.code >= 400 else {""},
        )

    @deferred_test
    async def test_junk_bodies_and_parameters(self):
        """Junk bodies, field values, path parameters and query parameters give 4xx Matrix errors."""
        room_id = await self.create_room(self.alice, preset="public_chat", room_alias_name="junk")
        event_id = await self.send_text(self.alice, room_id, "target")
        real = {
            "roomId": room_id,
            "roomIdOrAlias": room_id,
            "roomAlias": "#junk:test.example",
            "eventId": event_id,
            "userId": self.alice.user_id,
            "eventType": "m.room.message",
            "stateKey": "",
            "txnId": "t1",
            "receiptType": "m.read",
            "keyName": "displayname",
        }
        other_types = (
            "m.room.create",
            "m.room.member",
            "m.room.power_levels",
            "m.room.redaction",
            "",
        )
        junk_params = ("x", "!", "#", "@", "$", "%00", "a" * 300)
        routes = self.routes()
        self.assertGreater(len(routes), 30)
        for method, pattern in routes:

            def fill(overrides):
                path = pattern
                for name, value in {**real, **overrides}.items():
                    path = path.replace("{" + name + "}", path_part(value))
                return path

            path = fill({})
            if method in ("PUT", "POST"):
                for body in JUNK_BODIES:
                    await self.expect_no_server_error(method, path, body)
                for n, value in enumerate(JUNK_VALUES):
                    everything = {field: value for field in FIELDS}
                    await self.expect_no_server_error(
                        method, fill({"txnId": f"all{n}"}), everything
                    )
                for n, field in enumerate(FIELDS):
                    for value in (
                        JUNK_VALUES[n % len(JUNK_VALUES)],
                        JUNK_VALUES[(n + 3) % len(JUNK_VALUES)],
                    ):
                        await self.expect_no_server_error(
                            method, fill({"txnId": f"j{field}{value!r}"}), {field: value}
                        )
            else:
                for name in QUERY_NAMES:
                    for value in QUERY_VALUES:
                        await self.expect_no_server_error(
                            method, path + "?" + urlencode({name: value})
                        )
            if "{eventType}" in pattern:
                for event_type in other_types:
                    await self.expect_no_server_error(
                        method,
                        fill({"eventType": event_type, "txnId": event_type}),
                        {"membership": "join", "users": {}},
                    )
            for name in real:
                if "{" + name + "}" in pattern:
                    for value in junk_params:
                        await self.expect_no_server_error(method, fill({name: value}), {})
