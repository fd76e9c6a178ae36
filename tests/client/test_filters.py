"""Filters: the filter endpoints over HTTP, and the pure matching and projection rules."""

from hypothesis import given, strategies as st
from twisted.trial import unittest

from mxref.client.filters.filtering import (
    EventFilter,
    SyncFilter,
    project_event_fields,
    split_property_path,
    validate_filter,
)
from mxref.client.filters.resource import FilterResource
from mxref.client.filters.service import FilterService
from mxref.errors import MatrixError
from tests.client.support import ClientApiHarness, deferred_test
from tests.schema import validate_request, validate_response

FILTER_API = "client-server/filter.yaml"


class FilterEndpointTests(unittest.TestCase):
    """``POST``/``GET /user/{userId}/filter``."""

    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self)
        self.harness.add_routes(
            FilterResource(
                FilterService(self.harness.store.client_data), self.harness.authenticator
            )
        )
        self.alice = await self.harness.register_user("alice")
        self.bob = await self.harness.register_user("bob")

    def path(self, user, suffix=""):
        return f"/_matrix/client/v3/user/{user.user_id}/filter{suffix}"

    @deferred_test
    async def test_round_trip_of_spec_example(self):
        """The spec's example filter is stored and read back unchanged through v3 and r0."""
        definition = {
            "room": {
                "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
                "timeline": {
                    "limit": 10,
                    "types": ["m.room.message"],
                    "not_rooms": ["!726s6s6q:example.com"],
                    "not_senders": ["@spam:example.com"],
                },
                "ephemeral": {
                    "types": ["m.receipt", "m.typing"],
                    "not_rooms": ["!726s6s6q:example.com"],
                    "not_senders": ["@spam:example.com"],
                },
            },
            "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
            "event_format": "client",
            "event_fields": ["type", "content", "sender"],
        }
        validate_request(FILTER_API, "/user/{userId}/filter", "post", definition)
        response = await self.harness.request(
            "POST", self.path(self.alice), definition, token=self.alice.access_token
        )
        self.assertEqual(response.code, 200)
        validate_response(FILTER_API, "/user/{userId}/filter", "post", 200, response.json())
        filter_id = response.json()["filter_id"]
        self.assertFalse(filter_id.startswith("{"))
        for prefix in ("v3", "r0"):
            got = await self.harness.request(
                "GET",
                f"/_matrix/client/{prefix}/user/{self.alice.user_id}/filter/{filter_id}",
                token=self.alice.access_token,
            )
            self.assertEqual(got.code, 200)
            self.assertEqual(got.json(), definition)
            validate_response(
                FILTER_API, "/user/{userId}/filter/{filterId}", "get", 200, got.json()
            )

    @deferred_test
    async def test_unknown_filter_is_404(self):
        """An unknown filter ID, or another user's filter ID, gives 404 M_NOT_FOUND."""
        created = await self.harness.request(
            "POST", self.path(self.bob), {}, token=self.bob.access_token
        )
        bobs_filter = created.json()["filter_id"]
        for filter_id in ("12345", "nonsense", bobs_filter):
            response = await self.harness.request(
                "GET", self.path(self.alice, f"/{filter_id}"), token=self.alice.access_token
            )
            self.assertEqual(
                (response.code, response.json()["errcode"]), (404, "M_NOT_FOUND"), filter_id
            )

    @deferred_test
    async def test_other_users_filters_are_forbidden(self):
        """Uploading or reading filters under another user's ID gives 403 M_FORBIDDEN."""
        response = await self.harness.request(
            "POST", self.path(self.bob), {}, token=self.alice.access_token
        )
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        response = await self.harness.request(
            "GET", self.path(self.bob, "/1"), token=self.alice.access_token
        )
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))

    @deferred_test
    async def test_bad_shapes_are_refused(self):
        """Filters with wrongly typed fields get 400 M_BAD_JSON; a body that is not JSON M_NOT_JSON."""
        bad = [
            {"room": {"timeline": {"limit": "10"}}},
            {"room": {"timeline": {"limit": True}}},
            {"room": {"timeline": {"limit": -1}}},
            {"room": {"timeline": {"types": "m.room.message"}}},
            {"room": {"state": {"not_types": [1]}}},
            {"room": {"rooms": ["#alias:test.example"]}},
            {"room": {"not_rooms": "!a:b"}},
            {"room": {"state": {"lazy_load_members": "yes"}}},
            {"room": {"include_leave": 1}},
            {"presence": {"senders": ["alice"]}},
            {"account_data": {"not_senders": [None]}},
            {"event_fields": "content.body"},
            {"event_format": "raw"},
            {"room": []},
            {"room": {"timeline": []}},
        ]
        for definition in bad:
            response = await self.harness.request(
                "POST", self.path(self.alice), definition, token=self.alice.access_token
            )
            self.assertEqual(
                (response.code, response.json()["errcode"]), (400, "M_BAD_JSON"), definition
            )
        response = await self.harness.request(
            "POST", self.path(self.alice), b"{not json", token=self.alice.access_token
        )
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_NOT_JSON"))

    @deferred_test
    async def test_needs_access_token(self):
        """Without an access token the filter API answers 401 M_MISSING_TOKEN."""
        response = await self.harness.request("POST", self.path(self.alice), {})
        self.assertEqual((response.code, response.json()["errcode"]), (401, "M_MISSING_TOKEN"))


def _event(event_type="m.room.message", sender="@a:x", room_id="!r:x", content=None):
    return {"type": event_type, "sender": sender, "room_id": room_id, "content": content or {}}


class EventFilterTests(unittest.TestCase):
    """Matching events against EventFilter/RoomEventFilter definitions."""

    def test_types_with_wildcards(self):
        """`types` entries match literally except `*`, which matches any sequence of characters."""
        matching = EventFilter.from_json({"types": ["m.room.*", "org.example.exact"]})
        self.assertTrue(matching.matches_dict(_event("m.room.message")))
        self.assertTrue(matching.matches_dict(_event("m.room.")))
        self.assertTrue(matching.matches_dict(_event("org.example.exact")))
        self.assertFalse(matching.matches_dict(_event("org.example.exactly")))
        self.assertFalse(matching.matches_dict(_event("m.roomXmessage")))
        self.assertFalse(matching.matches_dict(_event("m.typing")))
        self.assertTrue(EventFilter.from_json({"types": ["*"]}).matches_dict(_event("anything")))
        self.assertTrue(EventFilter.from_json({"types": ["a*c*e"]}).matches_dict(_event("abcde")))

    def test_empty_types_matches_nothing(self):
        """An empty `types` list includes no events; an absent one includes all."""
        self.assertFalse(EventFilter.from_json({"types": []}).matches_dict(_event()))
        self.assertTrue(EventFilter.from_json({}).matches_dict(_event()))

    def test_exclusions_win(self):
        """not_types, not_senders and not_rooms exclude even what types, senders and rooms include."""
        definition = {
            "types": ["m.*"],
            "not_types": ["m.room.member"],
            "senders": ["@a:x", "@b:x"],
            "not_senders": ["@b:x"],
            "rooms": ["!r:x", "!s:x"],
            "not_rooms": ["!s:x"],
        }
        event_filter = EventFilter.from_json(definition)
        self.assertTrue(event_filter.matches_dict(_event()))
        self.assertFalse(event_filter.matches_dict(_event("m.room.member")))
        self.assertFalse(event_filter.matches_dict(_event(sender="@b:x")))
        self.assertFalse(event_filter.matches_dict(_event(sender="@c:x")))
        self.assertFalse(event_filter.matches_dict(_event(room_id="!s:x")))
        self.assertFalse(event_filter.matches_dict(_event(room_id="!t:x")))

    def test_contains_url(self):
        """contains_url true keeps only events with a content url; false only those without."""
        with_url, without = _event(content={"url": "mxc://x/y"}), _event(content={"body": "hi"})
        self.assertEqual(
            [
                e is with_url
                for e in EventFilter.from_json({"contains_url": True}).filter_dicts(
                    [with_url, without]
                )
            ],
            [True],
        )
        self.assertEqual(
            EventFilter.from_json({"contains_url": False}).filter_dicts([with_url, without]),
            [without],
        )

    def test_events_without_sender(self):
        """Sender conditions do not apply to events without a sender (account data, receipts)."""
        event_filter = EventFilter.from_json({"senders": ["@a:x"]})
        self.assertTrue(event_filter.matches_dict({"type": "m.receipt", "content": {}}))

    def test_limit(self):
        """`limit` keeps the first events that match."""
        events = [_event(content={"n": n}) for n in range(5)]
        self.assertEqual(EventFilter.from_json({"limit": 2}).filter_dicts(events), events[:2])

    @given(st.text(), st.text())
    def test_wildcard_free_types_match_exactly(self, pattern, event_type):
        """Without `*`, a types entry matches exactly the same string, whatever its characters."""
        pattern = pattern.replace("*", "")
        self.assertEqual(
            EventFilter.from_json({"types": [pattern]}).matches_dict(_event(event_type)),
            pattern == event_type,
        )

    def test_sync_filter_rooms_and_limits(self):
        """The RoomFilter's rooms/not_rooms and the timeline limit (default 10, capped) are read."""
        sync_filter = SyncFilter.from_json(
            validate_filter(
                {"room": {"not_rooms": ["!b:x"], "timeline": {"limit": 3}, "include_leave": True}}
            )
        )
        self.assertTrue(sync_filter.allows_room("!a:x"))
        self.assertFalse(sync_filter.allows_room("!b:x"))
        self.assertEqual(sync_filter.timeline_limit(), 3)
        self.assertTrue(sync_filter.include_leave)
        self.assertEqual(SyncFilter.from_json({}).timeline_limit(), 10)
        self.assertEqual(
            SyncFilter.from_json({"room": {"timeline": {"limit": 10**9}}}).timeline_limit(), 500
        )

    def test_inline_errcode(self):
        """validate_filter raises with the error code it is given (M_INVALID_PARAM for query parameters)."""
        with self.assertRaises(MatrixError) as caught:
            validate_filter({"room": {"timeline": {"limit": "x"}}}, errcode="M_INVALID_PARAM")
        self.assertEqual(
            (caught.exception.code, caught.exception.errcode), (400, "M_INVALID_PARAM")
        )


class EventFieldsTests(unittest.TestCase):
    """``event_fields`` projection with dot-separated property paths."""

    def test_projection(self):
        """Listed paths are kept, nested ones inside their parents; absent paths are skipped."""
        event = {
            "type": "m.room.message",
            "sender": "@a:x",
            "event_id": "$e",
            "content": {"body": "hi", "msgtype": "m.text"},
            "unsigned": {"age": 1},
        }
        projected = project_event_fields(
            event, ["type", "content.body", "unsigned.missing", "nope"]
        )
        self.assertEqual(projected, {"type": "m.room.message", "content": {"body": "hi"}})
        self.assertEqual(event["content"], {"body": "hi", "msgtype": "m.text"})

    def test_whole_object_then_member(self):
        """Asking for an object and one of its members keeps the whole object without touching the event."""
        event = {"content": {"body": "hi", "msgtype": "m.text"}}
        projected = project_event_fields(event, ["content", "content.body"])
        self.assertEqual(projected, event)
        projected["content"]["extra"] = 1
        self.assertNotIn("extra", event["content"])

    def test_escaped_dots(self):
        """`\\.` is a dot inside a key and `\\\\` a backslash, as the Appendices define."""
        self.assertEqual(
            split_property_path(r"content.m\.relates_to.rel_type"),
            ["content", "m.relates_to", "rel_type"],
        )
        self.assertEqual(split_property_path(r"content.a\\b"), ["content", "a\\b"])
        event = {"content": {"m.relates_to": {"rel_type": "m.thread"}, "m": {"relates_to": 1}}}
        self.assertEqual(
            project_event_fields(event, [r"content.m\.relates_to"]),
            {"content": {"m.relates_to": {"rel_type": "m.thread"}}},
        )
