"""Bad input sent to every route of a whole homeserver gets a Matrix error, never a 500.

A real :class:`~mxref.homeserver.HomeServer` (:func:`mxref.testing.homeserver.make_test_homeserver`)
serves its client and federation resources through a real ``MatrixSite``. Every route
registered on ``homeserver.client_resource`` and ``homeserver.federation_resource`` is found
by reading the resources' route tables, and each gets a corpus: bodies that are not JSON or
not an object, wrong types for every field the spec's OpenAPI request schema names
(``tests/spec``), missing required fields, bodies over the size caps, unknown rooms, users
and events in the path, missing and unknown access tokens, missing and bad ``X-Matrix``
headers, and forbidden actions.

Spec: Client-Server API "API Standards" > "Standard error response" (every error is a JSON
object with ``errcode`` and ``error``), "Common error codes" (``M_NOT_JSON``, ``M_BAD_JSON``,
``M_MISSING_TOKEN``/``M_UNKNOWN_TOKEN`` with 401, ``M_FORBIDDEN`` with 403, ``M_TOO_LARGE``
with 413); Server-Server API "Request Authentication" (401 ``M_UNAUTHORIZED``); room version
auth rules (a user may not raise their own power level, a non-member may not send).
"""

import json
import re
import time
from urllib.parse import quote

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.iweb import IAgent
from zope.interface import implementer

from mxref.errors import InvalidEventFormat
from mxref.events.signing import encode_verify_key_base64, generate_signing_key, key_id_of
from mxref.federation.transport.xmatrix import sign_request
from mxref.http.site import MatrixSite
from mxref.listeners import build_root_resource
from mxref.testing.homeserver import make_test_homeserver
from tests.client.support import deferred_test
from tests.http.memory_http import MemoryConnection
from tests.schema import SPEC_ROOT, SpecLookupError, _follow, _json_content, _node

SERVER_NAME = "test.example"
REMOTE = "remote.test"

#: Bodies that are not JSON objects (the last is an empty object, missing every field).
JUNK_BODIES = (b"", b"null", b"[]", b'"x"', b"3", b"{", b"\xff\xfe", b'{"a": NaN}', b"{}")

#: A value of each JSON type, to put where another type belongs.
VALUES_BY_TYPE = {
    "string": "x",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "object": {"a": 1},
    "array": [None],
    "null": None,
}

#: Extreme values of the right type that are easy to mishandle.
EXTREME_VALUES = {
    "string": ("", "\x00", "a" * 70000),
    "integer": (-1, 10**30),
    "number": (-1, 10**30),
    "array": ([], [None, 1, "x", {}]),
    "object": ({}, {"": None}),
}

#: The size the test Site caps bodies at (the real default is far larger).
SMALL_SITE_CAP = 4096

#: Routes whose handling logs the sending device out: its token is renewed after each request.
SESSION_ENDING = ("/logout", "/devices/", "/delete_devices", "/account/deactivate")


# --- the spec's request schemas ---------------------------------------------------------


def _normalise(path):
    """A path with every ``{parameter}`` replaced by ``{}``, r0 read as v3."""
    path = path.replace("/_matrix/client/r0/", "/_matrix/client/v3/")
    return re.sub(r"\{[^}]*\}", "{}", path)


def _spec_operations():
    """``{(METHOD, normalised full path): (uri, pointer, operation)}`` for every operation of
    the Client-Server and Server-Server OpenAPI documents."""
    operations = {}
    for api in ("client-server", "server-server"):
        for path in sorted((SPEC_ROOT / "api" / api).glob("*.yaml")):
            uri = path.as_uri()
            document = _node(uri, "")
            if not isinstance(document, dict) or "paths" not in document:
                continue
            servers = document.get("servers") or [{}]
            base = servers[0].get("variables", {}).get("basePath", {}).get("default", "")
            for template, methods in document["paths"].items():
                for method, operation in methods.items():
                    if not isinstance(operation, dict):
                        continue
                    pointer = "/paths/" + template.replace("~", "~0").replace("/", "~1") + "/" + method
                    key = (method.upper(), _normalise(base + template))
                    operations[key] = (uri, pointer, operation)
    return operations


def _resolved(uri, pointer):
    """``(properties, required)`` of a schema, through ``$ref`` and ``allOf``; each property
    as ``{name: set of JSON type names}`` (empty when the schema gives none)."""
    uri, pointer, node = _follow(uri, pointer)
    properties, required = {}, set(node.get("required", ()))
    for n, _ in enumerate(node.get("allOf", ())):
        more, more_required = _resolved(uri, f"{pointer}/allOf/{n}")
        properties.update(more)
        required |= more_required
    for name in node.get("properties", {}):
        escaped = name.replace("~", "~0").replace("/", "~1")
        _, _, prop = _follow(uri, f"{pointer}/properties/{escaped}")
        types = prop.get("type", ())
        types = {types} if isinstance(types, str) else set(types)
        if "integer" in types:
            types.add("number")
        properties[name] = types
    return properties, required


def request_schema(operations, method, pattern):
    """``(properties, required)`` of a route's JSON request body per the spec, or ``({}, set())``."""
    found = operations.get((method, _normalise(pattern)))
    if found is None:
        return {}, set()
    uri, pointer, operation = found
    if "requestBody" not in operation:
        return {}, set()
    try:
        uri, pointer, _ = _json_content(uri, pointer + "/requestBody", pattern)
    except SpecLookupError:
        return {}, set()
    return _resolved(uri, pointer + "/schema")


def needs_access_token(operations, method, pattern):
    """Whether the spec says the route needs an access token (``None``: not in the spec)."""
    found = operations.get((method, _normalise(pattern)))
    if found is None:
        return None
    security = found[2].get("security")
    return bool(security) and all(entry for entry in security)


def sample_of(types):
    """A value of one of ``types`` (a plausible filler for required fields)."""
    for kind in ("string", "object", "integer", "array", "boolean", "number"):
        if kind in types:
            return VALUES_BY_TYPE[kind]
    return "x"


# --- the test ---------------------------------------------------------------------------


@implementer(IAgent)
class _UnreachableNetwork:
    """A federation agent for which every other server is down (no DNS, no sockets)."""

    def request(self, method, uri, headers=None, bodyProducer=None):
        return defer.fail(ConnectionRefusedError(f"{uri!r} is unreachable in this test"))


class _Driver:
    """Raw HTTP requests to one Site in memory, waiting on the real reactor for answers."""

    def __init__(self, site):
        self.site = site

    async def request(self, method, path, body=None, headers=None, timeout=15.0):
        connection = MemoryConnection(self.site)
        connection.request(method, path, body, headers or {})
        deadline = time.monotonic() + timeout
        while True:
            try:
                return connection.response()
            except ValueError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no response to {method} {path} within {timeout} s")
            await task.deferLater(reactor, 0.002, lambda: None)


class WholeHomeserverBadInputTests(unittest.TestCase):
    """No input to any route of the homeserver gives a server error or a non-Matrix error."""

    #: Each test sends thousands of requests; leave room for a loaded parallel run.
    timeout = 600

    @deferred_test
    async def setUp(self):
        listener = {
            "port": 8008,
            "type": "http",
            "bind_addresses": ["127.0.0.1"],
            "resources": [{"names": ["client", "federation"]}],
        }
        self.homeserver = homeserver = await make_test_homeserver(
            self, reactor, server_name=SERVER_NAME, overrides={"listeners": [listener]},
            federation_agent=_UnreachableNetwork(),
        )
        root = build_root_resource(homeserver.config.listeners[0], homeserver.resources)
        self.http = _Driver(MatrixSite(root, MemoryReactorClock()))
        self.small_http = _Driver(
            MatrixSite(root, MemoryReactorClock(), max_request_body_size=SMALL_SITE_CAP)
        )
        self.operations = _spec_operations()
        # A remote server whose key we already hold, so that its signed requests get through.
        self.remote_key = generate_signing_key("r1")
        key_id, key_b64 = key_id_of(self.remote_key), encode_verify_key_base64(self.remote_key)
        valid_until = int(time.time() * 1000) + 10**9
        await homeserver.store.federation.store_server_keys(
            REMOTE, key_id, key_b64, valid_until, REMOTE,
            {"server_name": REMOTE, "verify_keys": {key_id: {"key": key_b64}},
             "valid_until_ts": valid_until},
        )
        self.alice, self.alice_token = await self.user("alice")
        self.bob, self.bob_token = await self.user("bob")
        self.carol, self.carol_token = await self.user("carol")
        created = await self.ok(
            "POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat",
                                                       "room_alias_name": "junk"}, self.alice_token
        )
        self.room_id = created["room_id"]
        await self.ok("POST", f"/_matrix/client/v3/join/{quote(self.room_id)}", {}, self.bob_token)
        sent = await self.ok(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(self.room_id)}/send/m.room.message/t0",
            {"msgtype": "m.text", "body": "target"},
            self.alice_token,
        )
        self.event_id = sent["event_id"]

    async def user(self, localpart):
        user_id = await self.homeserver.registrar.register_user(localpart, "secret words")
        _, token = await self.homeserver.login.start_session(user_id)
        return user_id, token

    async def ok(self, method, path, body, token):
        response = await self.http.request(method, path, json.dumps(body).encode(),
                                           {"Authorization": f"Bearer {token}"})
        self.assertEqual(response.code, 200, response.body)
        return response.json()

    def routes(self):
        """Every (resource kind, method, pattern) registered, r0 twins of v3 routes left out."""
        found = []
        for kind, resource in (("client", self.homeserver.client_resource),
                               ("federation", self.homeserver.federation_resource)):
            patterns = {(r.method, r.pattern) for r in resource._routes}
            for method, pattern in sorted(patterns):
                if "/_matrix/client/r0/" in pattern and (
                    method, pattern.replace("/r0/", "/v3/")
                ) in patterns:
                    continue
                found.append((kind, method, pattern))
        return found

    def fill(self, pattern, overrides=None):
        """The route's path with real values (or ``overrides``) for its parameters."""
        real = {
            "roomId": self.room_id,
            "roomIdOrAlias": self.room_id,
            "roomAlias": f"#junk:{SERVER_NAME}",
            "eventId": self.event_id,
            "userId": self.alice,
            "eventType": "m.room.message",
            "stateKey": "",
            "txnId": "junk-txn",
            "receiptType": "m.read",
            "keyName": "displayname",
            "deviceId": "NODEVICE",
            "filterId": "0",
            "type": "m.example",
            "keyId": "ed25519:nope",
            "relType": "m.replace",
        }
        path = pattern
        for name, value in {**real, **(overrides or {})}.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        self.assertNotIn("{", path, f"a parameter of {pattern} has no test value")
        return path

    def headers_for(self, kind, method, path, body, token):
        """Valid credentials: a bearer token for the client API, an X-Matrix header from
        :data:`REMOTE` for federation (signed over the body when it is JSON)."""
        if kind == "client":
            return {"Authorization": f"Bearer {token}"}
        try:
            content = json.loads(body) if body else None
        except ValueError:
            content = None
        try:
            header = sign_request(self.remote_key, REMOTE, SERVER_NAME, method, path, content)
        except InvalidEventFormat:  # NaN or a float: not canonical JSON, signed as no body
            header = sign_request(self.remote_key, REMOTE, SERVER_NAME, method, path, None)
        return {"Authorization": header}

    def assertMatrixError(self, response, what, status=None, errcode=None):
        """Not a 5xx; an error status carries a JSON object with string errcode and error."""
        self.assertLess(response.code, 500, f"{what}: {response.body[:300]!r}")
        if response.code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            self.fail(f"{what}: {response.code} with a non-JSON body {response.body[:200]!r}")
        self.assertIsInstance(body, dict, what)
        if response.code == 401 and "flows" in body and status is None:
            # User-interactive authentication: the first 401 lists flows and has no errcode.
            return
        self.assertIsInstance(body.get("errcode"), str, f"{what}: {body}")
        self.assertIsInstance(body.get("error"), str, f"{what}: {body}")
        if status is not None:
            self.assertEqual(response.code, status, f"{what}: {body}")
        if errcode is not None:
            self.assertEqual(body["errcode"], errcode, f"{what}: {body}")

    async def send(self, kind, method, path, body=None, token=None, http=None):
        """One request as a valid caller (a fresh token after session-ending routes)."""
        token = token or self.token
        response = await (http or self.http).request(
            method, path, body, self.headers_for(kind, method, path, body, token)
        )
        if kind == "client" and any(part in path for part in SESSION_ENDING):
            _, self.token = await self.homeserver.login.start_session(self.junk_user)
        return response

    @deferred_test
    async def test_bodies_on_every_route(self):
        """Non-JSON bodies, non-objects, wrong field types and missing required fields give 4xx Matrix errors on every route."""
        self.junk_user, self.token = await self.user("mallory")
        await self.ok("POST", f"/_matrix/client/v3/join/{quote(self.room_id)}", {}, self.token)
        routes = self.routes()
        self.assertGreater(len([r for r in routes if r[0] == "federation"]), 15)
        self.assertGreater(len([r for r in routes if r[0] == "client"]), 60)
        checked_fields = 0
        for kind, method, pattern in routes:
            if method not in ("PUT", "POST"):
                continue
            path = self.fill(pattern)
            for body in JUNK_BODIES:
                response = await self.send(kind, method, path, body)
                self.assertMatrixError(response, f"{method} {pattern} {body!r}")
            properties, required = request_schema(self.operations, method, pattern)
            if kind == "client" and properties:
                # A body the endpoint reads that is not JSON: 400 M_NOT_JSON.
                for body in (b"{", b"\xff\xfe", b'{"a": NaN}'):
                    response = await self.send(kind, method, path, body)
                    if response.code == 401 and "flows" in response.json():
                        continue
                    self.assertMatrixError(response, f"{method} {pattern} {body!r}", 400,
                                           "M_NOT_JSON")
                # JSON that is not an object: 400 M_BAD_JSON.
                for body in (b"[]", b"null", b'"x"', b"3"):
                    response = await self.send(kind, method, path, body)
                    if response.code == 401 and "flows" in response.json():
                        continue
                    self.assertMatrixError(response, f"{method} {pattern} {body!r}", 400,
                                           "M_BAD_JSON")
            for name, types in properties.items():
                checked_fields += 1
                wrong = [v for t, v in VALUES_BY_TYPE.items() if t not in types] if types else []
                extreme = [v for t in types for v in EXTREME_VALUES.get(t, ())]
                for value in wrong + extreme:
                    body = json.dumps({name: value}).encode()
                    response = await self.send(kind, method, path, body)
                    self.assertMatrixError(response, f"{method} {pattern} {name}={value!r:.40}")
            filled = {name: sample_of(properties.get(name, ())) for name in required}
            for name in required:
                body = json.dumps({k: v for k, v in filled.items() if k != name}).encode()
                response = await self.send(kind, method, path, body)
                self.assertMatrixError(response, f"{method} {pattern} without {name}")
        self.assertGreater(checked_fields, 50, "the spec's request schemas were not found")

    @deferred_test
    async def test_unknown_and_malformed_path_parameters(self):
        """Unknown rooms, users, events and malformed IDs in the path give 4xx Matrix errors."""
        self.junk_user, self.token = await self.user("mallory")
        unknown = {
            "roomId": f"!unknown:{SERVER_NAME}",
            "roomIdOrAlias": f"#unknown:{SERVER_NAME}",
            "roomAlias": f"#unknown:{SERVER_NAME}",
            "eventId": "$unknown",
            "userId": f"@nobody:{SERVER_NAME}",
            "deviceId": "UNKNOWN",
            "filterId": "999999",
            "keyId": "ed25519:unknown",
        }
        #: Raw (already percent-encoded) path segments.
        junk = ("x", "!", "@", "%24", "%23%3A", "%00", "%FF", "a" * 300, "%21a%3Aremote.test",
                "%40a%3Aremote.test")
        for kind, method, pattern in self.routes():
            names = re.findall(r"\{([^}]*)\}", pattern)
            body = b"{}" if method in ("PUT", "POST") else None
            for name in names:
                raw = ([quote(unknown[name], safe="")] if name in unknown else []) + list(junk)
                for segment in raw:
                    path = self.fill(pattern.replace("{" + name + "}", segment))
                    response = await self.send(kind, method, path, body)
                    self.assertMatrixError(response, f"{method} {path}")
            for query in ("?limit=-1", "?limit=x", "?from=x&dir=q", "?filter=%7B", "?since=x",
                          "?timeout=-5", "?at=x", "?via=%00", "?server_name=!", "?ts=x&dir=f"):
                response = await self.send(kind, method, self.fill(pattern) + query, body)
                self.assertMatrixError(response, f"{method} {pattern}{query}")

    @deferred_test
    async def test_huge_bodies(self):
        """A body over the Site's cap gives 413 M_TOO_LARGE on every PUT/POST route; so does one over the resource's cap."""
        self.junk_user, self.token = await self.user("mallory")
        routes = [(k, m, p) for k, m, p in self.routes() if m in ("PUT", "POST")]
        body = json.dumps({"padding": "x" * SMALL_SITE_CAP}).encode()
        for kind, method, pattern in routes:
            response = await self.send(kind, method, self.fill(pattern), body, http=self.small_http)
            self.assertMatrixError(response, f"{method} {pattern}", 413, "M_TOO_LARGE")
        kind, method, pattern = next(r for r in routes if r[2].endswith("/send/{eventType}/{txnId}"))
        body = json.dumps({"body": "x" * (11 * 1024 * 1024)}).encode()
        response = await self.send(kind, method, self.fill(pattern), body)
        self.assertMatrixError(response, f"{method} {pattern} 11 MiB", 413, "M_TOO_LARGE")

    @deferred_test
    async def test_missing_and_unknown_tokens(self):
        """Routes the spec guards with an access token answer 401 M_MISSING_TOKEN without one and M_UNKNOWN_TOKEN for a bad one."""
        guarded = 0
        for kind, method, pattern in self.routes():
            if kind != "client" or not needs_access_token(self.operations, method, pattern):
                continue
            guarded += 1
            path = self.fill(pattern)
            body = b"{}" if method in ("PUT", "POST") else None
            response = await self.http.request(method, path, body)
            self.assertMatrixError(response, f"{method} {pattern}", 401, "M_MISSING_TOKEN")
            for header in ("Bearer nope", "Bearer ", "Basic abc", "Bearer a b"):
                response = await self.http.request(method, path, body, {"Authorization": header})
                self.assertEqual(response.code, 401, f"{method} {pattern} {header!r}")
                self.assertMatrixError(response, f"{method} {pattern} {header!r}")
            response = await self.http.request(
                method, path, body, {"Authorization": "Bearer nope"}
            )
            self.assertMatrixError(response, f"{method} {pattern}", 401, "M_UNKNOWN_TOKEN")
            response = await self.http.request(method, path + ("&" if "?" in path else "?")
                                               + "access_token=nope", body)
            self.assertMatrixError(response, f"{method} {pattern} ?access_token", 401,
                                   "M_UNKNOWN_TOKEN")
        self.assertGreater(guarded, 40)

    @deferred_test
    async def test_missing_and_bad_x_matrix(self):
        """Federation routes (all but keys and version) answer 401 M_UNAUTHORIZED without a valid X-Matrix header."""
        open_routes = ("/_matrix/key/", "/_matrix/federation/v1/version")
        checked = 0
        other_key = generate_signing_key("r1")
        for kind, method, pattern in self.routes():
            if kind != "federation" or pattern.startswith(open_routes):
                continue
            checked += 1
            path = self.fill(pattern)
            body = b"{}" if method in ("PUT", "POST") else None
            content = {} if body else None
            bad_headers = (
                None,
                "X-Matrix",
                "X-Matrix garbage",
                'X-Matrix origin="",key="",sig=""',
                'X-Matrix origin=remote.test,key="ed25519:r1",sig="AAAA"',
                sign_request(other_key, REMOTE, SERVER_NAME, method, path, content),
                sign_request(self.remote_key, REMOTE, "other.example", method, path, content),
                sign_request(self.remote_key, REMOTE, SERVER_NAME, "DELETE", path, content),
                "Bearer " + "x" * 10,
            )
            for header in bad_headers:
                headers = {"Authorization": header} if header is not None else {}
                response = await self.http.request(method, path, body, headers)
                self.assertMatrixError(response, f"{method} {pattern} {header!r:.50}", 401,
                                       "M_UNAUTHORIZED")
        self.assertGreater(checked, 15)

    @deferred_test
    async def test_forbidden_actions(self):
        """A non-member cannot send or set state, and a member cannot raise their own power level: 403 M_FORBIDDEN."""
        room = quote(self.room_id, safe="")
        for token, method, path, body in (
            (self.carol_token, "PUT", f"/rooms/{room}/send/m.room.message/c1", {"body": "hi"}),
            (self.carol_token, "PUT", f"/rooms/{room}/state/m.room.topic", {"topic": "mine"}),
            (self.carol_token, "POST", f"/rooms/{room}/invite", {"user_id": self.carol}),
            (self.bob_token, "PUT", f"/rooms/{room}/state/m.room.power_levels",
             {"users": {self.bob: 100}}),
            (self.bob_token, "POST", f"/rooms/{room}/kick", {"user_id": self.alice}),
            (self.bob_token, "PUT", f"/rooms/{room}/state/m.room.name", {"name": "bob's"}),
        ):
            response = await self.http.request(
                method, "/_matrix/client/v3" + path, json.dumps(body).encode(),
                {"Authorization": f"Bearer {token}"},
            )
            self.assertMatrixError(response, f"{method} {path}", 403, "M_FORBIDDEN")

    @deferred_test
    async def test_nested_junk_over_federation(self):
        """Signed transactions and membership handshakes holding junk PDUs and EDUs get 200 or a 4xx Matrix error."""
        self.junk_user, self.token = await self.user("mallory")
        base_pdu = {
            "room_id": self.room_id,
            "sender": f"@someone:{REMOTE}",
            "type": "m.room.message",
            "origin_server_ts": 1,
            "depth": 5,
            "prev_events": [self.event_id],
            "auth_events": [],
            "content": {"body": "x"},
            "hashes": {"sha256": "x"},
            "signatures": {},
        }
        junk_pdus = [None, 1, "x", [], {}]
        for field in base_pdu:
            for value in (None, 1, "x", [], {"a": 1}, [None], -1, 10**30):
                junk_pdus.append(dict(base_pdu, **{field: value}))
        junk_edus = [None, {}, {"edu_type": 1}]
        for edu_type in ("m.typing", "m.receipt", "m.presence", "m.device_list_update",
                         "m.direct_to_device", "m.signing_key_update", "unknown"):
            for content in (None, 1, "x", [], {}, {"room_id": 1, "user_id": [], "typing": "yes"},
                            {self.room_id: {"m.read": {"@a:remote.test": {"event_ids": 1}}}},
                            {self.room_id: {"m.read": {f"@a:{REMOTE}": {"event_ids": [1], "data": 2}}}},
                            {"push": [None, {"user_id": 1}]}):
                junk_edus.append({"edu_type": edu_type, "content": content})
        n = 0
        for pdu in junk_pdus:
            n += 1
            body = json.dumps({"origin": REMOTE, "origin_server_ts": 1, "pdus": [pdu]}).encode()
            response = await self.send("federation", "PUT", f"/_matrix/federation/v1/send/j{n}", body)
            self.assertMatrixError(response, f"PUT send pdu {pdu!r:.80}")
        for edu in junk_edus:
            n += 1
            body = json.dumps({"origin": REMOTE, "origin_server_ts": 1, "pdus": [], "edus": [edu]}).encode()
            response = await self.send("federation", "PUT", f"/_matrix/federation/v1/send/j{n}", body)
            self.assertMatrixError(response, f"PUT send edu {edu!r:.80}")
        room, event = quote(self.room_id, safe=""), quote("$junk", safe="")
        for pdu in junk_pdus:
            for path, body in (
                (f"/_matrix/federation/v2/send_join/{room}/{event}", pdu),
                (f"/_matrix/federation/v2/send_leave/{room}/{event}", pdu),
                (f"/_matrix/federation/v1/send_knock/{room}/{event}", pdu),
                (f"/_matrix/federation/v2/invite/{room}/{event}",
                 {"event": pdu, "room_version": "11", "invite_room_state": [pdu]}),
                (f"/_matrix/federation/v1/invite/{room}/{event}", pdu),
            ):
                response = await self.send("federation", "PUT", path, json.dumps(body).encode())
                self.assertMatrixError(response, f"PUT {path} {body!r:.80}")
