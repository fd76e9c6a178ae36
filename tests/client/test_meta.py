"""Tests for mxref.client.meta: /versions, /.well-known/matrix/client and /capabilities over HTTP."""

from twisted.trial import unittest

from mxref.client.meta.resource import SUPPORTED_VERSIONS, MetaResource
from mxref.events.room_versions import ROOM_VERSIONS
from mxref.http.resource import JsonResource
from tests.client.support import ClientApiHarness, deferred_test
from tests.schema import validate_response, validate_schema


class VersionsTests(unittest.TestCase):
    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self)

    @deferred_test
    async def test_versions_lists_r0_and_v1_1_to_v1_12(self):
        """/versions answers without a token, listing r0.6.1 and v1.1 to v1.12 and nothing newer."""
        response = await self.harness.request("GET", "/_matrix/client/versions")
        self.assertEqual(response.code, 200)
        body = response.json()
        validate_response("client-server/versions.yaml", "/versions", "get", 200, body)
        self.assertIn("r0.6.1", body["versions"])
        self.assertEqual([v for v in body["versions"] if v.startswith("v")],
                         [f"v1.{minor}" for minor in range(1, 13)])
        self.assertEqual(body["unstable_features"], {})

    @deferred_test
    async def test_versions_ignores_the_access_token(self):
        """/versions gives the same answer with a stale token, since nothing in it depends on the user."""
        plain = await self.harness.request("GET", "/_matrix/client/versions")
        with_token = await self.harness.request("GET", "/_matrix/client/versions", token="mxr_not_a_token")
        self.assertEqual(with_token.code, 200)
        self.assertEqual(with_token.json(), plain.json())

    @deferred_test
    async def test_versions_has_cors_headers(self):
        """Browser clients can read /versions: the CORS allow-origin header is set."""
        response = await self.harness.request("GET", "/_matrix/client/versions")
        self.assertEqual(response.header("access-control-allow-origin"), "*")

    def test_root_can_list_other_versions(self):
        """The composition root may pass its own version list and unstable features."""
        resource = MetaResource(None, versions=("v1.1",), unstable_features={"org.example.feature": True})
        self.assertEqual(resource.get_versions(None),
                         (200, {"versions": ["v1.1"], "unstable_features": {"org.example.feature": True}}))
        self.assertEqual(SUPPORTED_VERSIONS[:3], ("r0.5.0", "r0.6.0", "r0.6.1"))


class WellKnownTests(unittest.TestCase):
    @deferred_test
    async def test_well_known_names_the_public_base_url(self):
        """/.well-known/matrix/client gives m.homeserver.base_url from public_baseurl, with CORS headers."""
        harness = await ClientApiHarness.create(self, public_baseurl="https://matrix.test.example/")
        response = await harness.request("GET", "/.well-known/matrix/client")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"m.homeserver": {"base_url": "https://matrix.test.example/"}})
        validate_schema("api/client-server/definitions/wellknown/full.yaml", response.json())
        self.assertEqual(response.header("access-control-allow-origin"), "*")
        self.assertEqual(response.header("content-type"), "application/json")

    @deferred_test
    async def test_well_known_is_404_without_a_base_url(self):
        """Without public_baseurl, /.well-known/matrix/client is 404 M_NOT_FOUND so clients ignore it."""
        harness = await ClientApiHarness.create(self)
        response = await harness.request("GET", "/.well-known/matrix/client")
        self.assertEqual(response.code, 404)
        self.assertEqual(response.json()["errcode"], "M_NOT_FOUND")


class CapabilitiesTests(unittest.TestCase):
    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self)
        self.alice = await self.harness.register_user("alice")

    @deferred_test
    async def test_capabilities_need_a_token(self):
        """/capabilities without a token is 401 M_MISSING_TOKEN; with an unknown one, 401 M_UNKNOWN_TOKEN."""
        missing = await self.harness.request("GET", "/_matrix/client/v3/capabilities")
        self.assertEqual((missing.code, missing.json()["errcode"]), (401, "M_MISSING_TOKEN"))
        unknown = await self.harness.request("GET", "/_matrix/client/v3/capabilities", token="mxr_nope")
        self.assertEqual((unknown.code, unknown.json()["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        validate_schema("api/client-server/definitions/errors/error.yaml", unknown.json())

    @deferred_test
    async def test_capabilities_describe_the_server(self):
        """A logged-in user learns room versions 1-12 (default 12), password changes on, 3PID changes off."""
        response = await self.harness.request("GET", "/_matrix/client/v3/capabilities", token=self.alice.access_token)
        self.assertEqual(response.code, 200)
        body = response.json()
        validate_response("client-server/capabilities.yaml", "/capabilities", "get", 200, body)
        capabilities = body["capabilities"]
        self.assertEqual(capabilities["m.room_versions"]["default"], "12")
        self.assertEqual(capabilities["m.room_versions"]["available"],
                         {str(version): "stable" for version in range(1, 13)})
        self.assertEqual(set(capabilities["m.room_versions"]["available"]), set(ROOM_VERSIONS))
        self.assertEqual(capabilities["m.change_password"], {"enabled": True})
        self.assertEqual(capabilities["m.set_displayname"], {"enabled": True})
        self.assertEqual(capabilities["m.set_avatar_url"], {"enabled": True})
        self.assertEqual(capabilities["m.3pid_changes"], {"enabled": False})
        self.assertEqual(capabilities["m.get_login_token"], {"enabled": False})

    @deferred_test
    async def test_capabilities_on_r0_path(self):
        """The legacy r0 path serves the same capabilities."""
        v3 = await self.harness.request("GET", "/_matrix/client/v3/capabilities", token=self.alice.access_token)
        r0 = await self.harness.request("GET", "/_matrix/client/r0/capabilities", token=self.alice.access_token)
        self.assertEqual(r0.code, 200)
        self.assertEqual(r0.json(), v3.json())

    @deferred_test
    async def test_default_room_version_is_configurable(self):
        """A server configured with default room version 11 advertises 11 as the default."""
        resource = JsonResource()
        MetaResource(self.harness.authenticator, default_room_version="11").register_routes(resource)
        self.harness.site.resource = resource
        response = await self.harness.request("GET", "/_matrix/client/v3/capabilities", token=self.alice.access_token)
        self.assertEqual(response.json()["capabilities"]["m.room_versions"]["default"], "11")

    @deferred_test
    async def test_capabilities_refuse_other_methods(self):
        """POST /capabilities is 405 M_UNRECOGNIZED."""
        response = await self.harness.request("POST", "/_matrix/client/v3/capabilities", {},
                                              token=self.alice.access_token)
        self.assertEqual((response.code, response.json()["errcode"]), (405, "M_UNRECOGNIZED"))
