"""A forwarding TCP proxy on loopback that a test can cut and heal, to partition servers.

Interop tests put one :class:`ForwardingProxy` in front of each homeserver's
federation port and give the server the name ``localhost:<proxy port>``. By the
Server-Server API's server discovery rules ("Resolving server names",
https://spec.matrix.org/v1.19/server-server-api/#resolving-server-names) a
name with an explicit port is contacted at that host and port directly, so
every federation request to the server then goes through the proxy, while
clients still reach the server's client port directly. The proxy forwards raw
bytes (TLS passes through untouched), so cutting it looks to the peers like
a network partition: :meth:`ForwardingProxy.cut` drops the open connections
and resets new ones until :meth:`ForwardingProxy.heal`.

The proxy runs in plain threads (one accepting, two per connection), not in the
Twisted reactor, because the interop tests block the reactor's thread while
they drive the servers.
"""

import socket
import struct
import threading


class ForwardingProxy:
    """Forward TCP connections from ``127.0.0.1:<listen port>`` to ``127.0.0.1:<target port>``.

    :param target_port: the port connections are forwarded to.
    :param listen_port: the port to listen on; a free one chosen by the OS when ``None``.
    :param host: the loopback address used on both sides.
    """

    def __init__(self, target_port: int, listen_port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, listen_port or 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open_sockets = set()
        self._cut = False
        self._closed = False
        self._accepting = None

    def start(self) -> None:
        """Listen and start forwarding in a background thread; returns at once."""
        self._listener.listen(64)
        self._accepting = threading.Thread(
            target=self._accept_loop, name=f"proxy-{self.port}", daemon=True
        )
        self._accepting.start()

    @property
    def is_cut(self) -> bool:
        """Whether the proxy is refusing traffic."""
        return self._cut

    def cut(self) -> None:
        """Close every forwarded connection and reset new ones until :meth:`heal`."""
        with self._lock:
            self._cut = True
            sockets, self._open_sockets = self._open_sockets, set()
        for sock in sockets:
            _reset(sock)

    def heal(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Stop listening and drop every connection; the proxy cannot be restarted."""
        self._closed = True
        self.cut()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        if self._accepting is not None:
            self._accepting.join(5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                # The target is down: the caller sees the same refusal as without a proxy.
                _reset(client)
                continue
            with self._lock:
                if self._cut:
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open_sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump,
                    args=(source, sink),
                    name=f"proxy-{self.port}-pump",
                    daemon=True,
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes from ``source`` to ``sink`` until either side ends, then close both."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open_sockets.discard(source)
            self._open_sockets.discard(sink)
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (``SO_LINGER`` of zero), as a dropped link would look."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
