"""Tests for tests/schema.py: spec examples validate, broken bodies do not, and every $ref resolves."""

from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin

import yaml
from jsonschema import ValidationError
from twisted.trial import unittest

from tests.schema import (
    SPEC_ROOT, SpecLookupError, _node, example_response, expand_example,
    validate_request, validate_response, validate_schema,
)


class ResponseValidationTests(unittest.TestCase):
    def test_versions_example_and_broken_versions(self):
        """The spec's /versions example passes; a string instead of a list of versions fails."""
        body = example_response("client-server/versions.yaml", "/versions", "get", 200)
        self.assertIn("v1.1", body["versions"])
        validate_response("client-server/versions.yaml", "/versions", "get", 200, body)
        validate_response("client-server/versions.yaml", "/_matrix/client/versions", "get", 200, body)
        self.assertRaises(ValidationError, validate_response,
                          "client-server/versions.yaml", "/versions", "get", 200, {"versions": "v1.1"})
        self.assertRaises(ValidationError, validate_response,
                          "client-server/versions.yaml", "/versions", "get", 200, {})

    def test_login_example_and_broken_login(self):
        """The spec's login response passes; a missing access_token or a user ID without '@' fails."""
        body = example_response("client-server/login.yaml", "/login", "post", 200)
        validate_response("client-server/login.yaml", "/_matrix/client/v3/login", "post", 200, body)
        missing = {key: value for key, value in body.items() if key != "access_token"}
        self.assertRaises(ValidationError, validate_response,
                          "client-server/login.yaml", "/login", "post", 200, missing)
        self.assertRaises(ValidationError, validate_response,
                          "client-server/login.yaml", "/login", "post", 200, {**body, "user_id": "alice"})
        self.assertRaises(ValidationError, validate_response,
                          "client-server/login.yaml", "/login", "post", 200, {**body, "expires_in_ms": "soon"})

    def test_sync_example_and_broken_sync(self):
        """The spec's (expanded) /sync example passes; a body without next_batch fails."""
        body = example_response("client-server/sync.yaml", "/sync", "get", 200)
        self.assertEqual(body["presence"]["events"][0]["type"], "m.presence")
        validate_response("client-server/sync.yaml", "/sync", "get", 200, body)
        self.assertRaises(ValidationError, validate_response,
                          "client-server/sync.yaml", "/sync", "get", 200,
                          {key: value for key, value in body.items() if key != "next_batch"})
        broken_rooms = {**body, "rooms": {"join": {"!r:x": {"timeline": {"events": "none"}}}}}
        self.assertRaises(ValidationError, validate_response,
                          "client-server/sync.yaml", "/sync", "get", 200, broken_rooms)

    def test_error_responses(self):
        """Error bodies are checked against the spec's error schemas (via $ref'd files)."""
        validate_response("client-server/login.yaml", "/login", "post", 429,
                          {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000})
        self.assertRaises(ValidationError, validate_response, "client-server/login.yaml", "/login", "post", 403,
                          {"error": "no errcode"})

    def test_federation_response(self):
        """Federation documents work too: the /send example passes, a non-object pdus map fails."""
        body = example_response("server-server/transactions.yaml", "/send/{txnId}", "put", 200)
        validate_response("server-server/transactions.yaml", "/_matrix/federation/v1/send/{txnId}", "put", 200, body)
        self.assertRaises(ValidationError, validate_response,
                          "server-server/transactions.yaml", "/send/{txnId}", "put", 200, {"pdus": []})

    def test_unknown_operation(self):
        """Asking for a path, method or status the spec does not document is an error, not a pass."""
        self.assertRaises(SpecLookupError, validate_response, "client-server/login.yaml", "/nope", "get", 200, {})
        self.assertRaises(SpecLookupError, validate_response, "client-server/login.yaml", "/login", "put", 200, {})
        self.assertRaises(SpecLookupError, validate_response, "client-server/login.yaml", "/login", "post", 418, {})
        self.assertRaises(SpecLookupError, validate_response, "client-server/nope.yaml", "/x", "get", 200, {})


class RequestValidationTests(unittest.TestCase):
    def test_login_request(self):
        """A password login request passes; one without a type fails."""
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "hunter2"}
        validate_request("client-server/login.yaml", "/login", "post", body)
        self.assertRaises(ValidationError, validate_request, "client-server/login.yaml", "/login", "post",
                          {"password": "hunter2"})

    def test_create_room_request(self):
        """createRoom accepts a known preset and refuses an unknown one."""
        validate_request("client-server/create_room.yaml", "/createRoom", "post", {"preset": "private_chat"})
        self.assertRaises(ValidationError, validate_request, "client-server/create_room.yaml",
                          "/createRoom", "post", {"preset": "nope"})

    def test_get_has_no_request_body(self):
        """Asking for the request body of a GET is an error."""
        self.assertRaises(SpecLookupError, validate_request, "client-server/versions.yaml", "/versions", "get", {})


class EventSchemaTests(unittest.TestCase):
    def test_member_event_example(self):
        """The expanded m.room.member example passes its schema; without membership it fails."""
        path = SPEC_ROOT / "event-schemas/examples/m.room.member.yaml"
        event = expand_example(yaml.safe_load(path.read_text()), path.as_uri())
        self.assertEqual(event["type"], "m.room.member")
        self.assertIn("event_id", event)
        validate_schema("event-schemas/schema/m.room.member.yaml", event)
        broken = {**event, "content": {"displayname": "Alice"}}
        self.assertRaises(ValidationError, validate_schema, "event-schemas/schema/m.room.member.yaml", broken)

    def test_pdu_v12_example(self):
        """The allOf-built pdu_v12 example expands and passes; dropping hashes fails."""
        path = SPEC_ROOT / "api/server-server/examples/pdu_v12.json"
        pdu = expand_example(_node(path.as_uri(), ""), path.as_uri())
        self.assertIn("hashes", pdu)
        validate_schema("api/server-server/definitions/pdu_v12.yaml", pdu)
        without_hashes = {key: value for key, value in pdu.items() if key != "hashes"}
        self.assertRaises(ValidationError, validate_schema, "api/server-server/definitions/pdu_v12.yaml",
                          without_hashes)


def _refs(value):
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


class SpecCopyTests(unittest.TestCase):
    def test_spec_data_lives_in_the_repository(self):
        """The schemas are read from tests/spec inside the repository, never from outside it."""
        self.assertEqual(SPEC_ROOT, Path(__file__).resolve().parent / "spec")
        self.assertTrue((SPEC_ROOT / "LICENSE").is_file())

    def test_every_ref_resolves(self):
        """Every $ref in the copied client-server and server-server documents points at something that exists."""
        checked = 0
        for folder in ("api/client-server", "api/server-server"):
            for path in sorted((SPEC_ROOT / folder).rglob("*")):
                if path.suffix not in (".yaml", ".json"):
                    continue
                base = path.as_uri()
                for ref in _refs(_node(base, "")):
                    target, fragment = urldefrag(urljoin(base, ref))
                    _node(target, unquote(fragment))
                    checked += 1
        self.assertGreater(checked, 500)
