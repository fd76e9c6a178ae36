"""The blocking Client-Server API client against a tiny loopback HTTP server (no homeserver needed)."""

import json
import socket
import threading

from twisted.trial import unittest

from mxref.testing.csclient import CSClient, MatrixRequestError


class OneShotServer:
    """Answers each connection's first request with a canned JSON reply, then closes the socket
    without saying so (no ``Connection: close``), as a server dropping an idle keep-alive does."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        self.requests = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:])
                length = int(headers.get("Content-Length", 0))
                while len(rest) < length:
                    rest += connection.recv(65536)
                self.requests.append((lines[0], headers, rest))
                payload = json.dumps(self.body).encode()
                connection.sendall(
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
                )

    def close(self):
        self.listener.close()


class CSClientTests(unittest.TestCase):
    """What a benchmark or test sees from CSClient."""

    def serve(self, status: int, body: dict) -> OneShotServer:
        server = OneShotServer(status, body)
        self.addCleanup(server.close)
        return server

    def test_reconnects_when_the_server_dropped_the_connection(self):
        """A request on a kept-alive connection the server has closed is sent again on a new one."""
        server = self.serve(200, {"event_id": "$e"})
        client = CSClient(f"http://127.0.0.1:{server.port}", access_token="tok")
        self.assertEqual(client.send_message("!r:x", "one", txn_id="t1"), "$e")
        self.assertEqual(client.send_message("!r:x", "two", txn_id="t2"), "$e")
        self.assertEqual(
            [line for line, _, _ in server.requests],
            [
                "PUT /_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1 HTTP/1.1",
                "PUT /_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t2 HTTP/1.1",
            ],
        )
        _, headers, body = server.requests[1]
        self.assertEqual(headers["Authorization"], "Bearer tok")
        self.assertEqual(json.loads(body), {"msgtype": "m.text", "body": "two"})

    def test_error_answer_raises_with_errcode(self):
        """A non-2xx answer raises MatrixRequestError carrying the status and the Matrix errcode."""
        server = self.serve(403, {"errcode": "M_FORBIDDEN", "error": "no"})
        client = CSClient(f"http://127.0.0.1:{server.port}")
        error = self.assertRaises(MatrixRequestError, client.create_room)
        self.assertEqual((error.status, error.errcode), (403, "M_FORBIDDEN"))

    def test_transaction_ids_are_unique_across_threads(self):
        """Transaction IDs handed out to many threads at once never repeat."""
        client = CSClient("http://127.0.0.1:1")
        seen = []

        def take():
            seen.extend(client.new_txn_id() for _ in range(500))

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(set(seen)), 4000)

    def test_sync_and_join_query_strings(self):
        """sync sends since/timeout/filter as query parameters; join sends one via per server."""
        server = self.serve(200, {"next_batch": "s2", "room_id": "!r:x"})
        client = CSClient(f"http://127.0.0.1:{server.port}", access_token="tok")
        client.sync(since="s1", timeout_ms=100, filter={"room": {"timeline": {"limit": 5}}})
        client.join("!r:x", via=["a.example", "b.example:8448"])
        self.assertEqual(
            server.requests[0][0],
            "GET /_matrix/client/v3/sync?since=s1&timeout=100&filter=%7B%22room%22%3A%7B%22"
            "timeline%22%3A%7B%22limit%22%3A5%7D%7D%7D HTTP/1.1",
        )
        self.assertEqual(
            server.requests[1][0],
            "POST /_matrix/client/v3/join/%21r%3Ax?via=a.example&via=b.example%3A8448 HTTP/1.1",
        )
