"""Tests for mxref.http.site: the Server header, the access log and the client address."""

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.trial import unittest

from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite, client_ip, redact_uri
from tests.http.memory_http import MemoryConnection, request


class SiteTests(unittest.TestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.pending = {}
        self.resource = JsonResource()
        self.resource.register("GET", "/ip", lambda req: (200, {"ip": client_ip(req)}))
        self.resource.register("GET", "/slow", lambda req: self.pending.setdefault("d", defer.Deferred()))
        self.site = MatrixSite(self.resource, self.clock)
        self.events = []
        self.site._log = Logger(observer=self.events.append)

    def test_server_header_names_mxref(self):
        """Responses carry 'Server: mxref/<version>' rather than Twisted's banner."""
        import mxref
        response = request(self.site, "GET", "/ip")
        self.assertEqual(response.header("Server"), f"mxref/{mxref.__version__}")

    def test_access_log_has_method_path_status_and_duration(self):
        """Each request is logged with method, path, status and how long it took."""
        connection = MemoryConnection(self.site)
        connection.request("GET", "/slow?since=s1", headers={"User-Agent": "test-client"})
        self.clock.advance(0.25)
        self.pending["d"].callback((200, {}))
        [event] = self.events
        self.assertEqual(event["method"], "GET")
        self.assertEqual(event["path"], "/slow?since=s1")
        self.assertEqual(event["status"], 200)
        self.assertEqual(event["duration_ms"], 250)
        self.assertEqual(event["user_agent"], "test-client")
        self.assertEqual(event["client_ip"], "127.0.0.7")

    def test_access_token_never_logged(self):
        """A query-string access token is replaced by <redacted> in the log."""
        request(self.site, "GET", "/ip?access_token=syt_secret&x=1")
        [event] = self.events
        self.assertNotIn("syt_secret", event["path"])
        self.assertEqual(event["path"], "/ip?access_token=<redacted>&x=1")

    def test_non_ascii_query_logged_without_error(self):
        """Percent-encoded or raw non-ASCII query values are logged, never crash the request."""
        self.assertEqual(redact_uri(b"/a?username=%E2%98%83&access_token=t"), "/a?username=%E2%98%83&access_token=<redacted>")
        self.assertTrue(redact_uri(b"/a?u=\xe2\x98\x83").startswith("/a?u="))
        self.assertEqual(redact_uri(b"/a?access%5Ftoken=t"), "/a?access%5Ftoken=<redacted>")

    def test_redact_uri_without_query(self):
        """A URI without a query string is logged as it is."""
        self.assertEqual(redact_uri(b"/_matrix/client/versions"), "/_matrix/client/versions")

    def test_x_forwarded_for_ignored_by_default(self):
        """A client cannot pick its logged or rate-limited address with X-Forwarded-For."""
        response = request(self.site, "GET", "/ip", headers={"X-Forwarded-For": "1.2.3.4"})
        self.assertEqual(response.json(), {"ip": "127.0.0.7"})

    def test_x_forwarded_for_trusted_takes_the_proxy_entry(self):
        """Behind a trusted proxy, the address is the last X-Forwarded-For entry, the one the proxy added."""
        self.site.trust_x_forwarded_for = True
        response = request(self.site, "GET", "/ip", headers={"X-Forwarded-For": "6.6.6.6, 1.2.3.4"})
        self.assertEqual(response.json(), {"ip": "1.2.3.4"})
        self.assertEqual(request(self.site, "GET", "/ip").json(), {"ip": "127.0.0.7"})

    def test_refused_body_is_logged(self):
        """A body refused for its size leaves a log line too."""
        self.site.max_request_body_size = 10
        connection = MemoryConnection(self.site)
        connection.send(b"PUT /ip HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
        self.assertEqual(connection.response().code, 413)
        self.assertEqual(len(self.events), 1)
        self.assertIn("refused", self.events[0]["log_format"])

    def test_authenticated_user_is_logged(self):
        """Once a request is authenticated, the access log names the user."""
        from mxref.auth.tokens import Requester

        def endpoint(req):
            req.requester = Requester("@alice:example.org", "DEV", "secret-token")
            return 200, {}

        self.resource.register("GET", "/me", endpoint)
        request(self.site, "GET", "/me")
        [event] = self.events
        self.assertEqual(event["user_id"], "@alice:example.org")
        self.assertNotIn("secret-token", repr(event))

    def test_disconnect_before_response_is_logged(self):
        """A client that hangs up on a long request leaves a 'disconnected' log line with the path."""
        connection = MemoryConnection(self.site)
        connection.request("GET", "/slow?access_token=secret")
        self.clock.advance(2)
        connection.disconnect()
        [event] = self.events
        self.assertIn("disconnected", event["log_format"])
        self.assertEqual(event["duration_ms"], 2000)
        self.assertNotIn("secret", event["path"])
        self.assertTrue(self.pending["d"].called)

    def test_half_sent_request_is_not_logged_as_a_request(self):
        """A client that disconnects halfway through sending its body never reaches the endpoint or the log."""
        connection = MemoryConnection(self.site)
        connection.send(b"PUT /ip HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n{")
        connection.disconnect()
        self.assertEqual(self.events, [])
