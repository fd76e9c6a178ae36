"""The server's identity and general behaviour: ``server_name``, ``public_baseurl`` and friends.

The server name is the Matrix server name of the Appendices, section
"Server Name" (https://spec.matrix.org/v1.19/appendices/#server-name)::

    server_name = hostname [ ":" port ]
    port        = 1*5DIGIT
    hostname    = IPv4address / "[" IPv6address "]" / dns-name
    dns-name    = 1*255dns-char
    dns-char    = DIGIT / ALPHA / "-" / "."

It is part of every user ID, room alias and event signature, so it cannot
be changed once the server has users.
"""

import ipaddress
import re
from urllib.parse import urlsplit

import attrs

from mxref.config.reader import REQUIRED, ConfigError, ConfigReader
from mxref.events.room_versions import DEFAULT_ROOM_VERSION, ROOM_VERSIONS

_DNS_NAME = re.compile(r"[0-9A-Za-z.\-]{1,255}")


def split_server_name(server_name: str):
    """Split a server name into ``(host, port)``; ``port`` is ``None`` when absent.

    IPv6 literals keep their brackets off in ``host`` (``"[::1]:8448"`` gives ``("::1", 8448)``).

    :raises ValueError: if ``server_name`` breaks the grammar of the Appendices.
    """
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            raise ValueError("an IPv6 literal must be closed with ']'")
        host, rest = server_name[1:end], server_name[end + 1 :]
        ipaddress.IPv6Address(host)
    else:
        host, _, port_text = server_name.partition(":")
        rest = ":" + port_text if _ else ""
        if not _DNS_NAME.fullmatch(host):
            raise ValueError("the hostname may only contain letters, digits, '-' and '.'")
    if not rest:
        return host, None
    if not re.fullmatch(r":[0-9]{1,5}", rest):
        raise ValueError("a port must be ':' followed by 1 to 5 digits")
    return host, int(rest[1:])


@attrs.frozen
class ServerConfig:
    """General server settings.

    :ivar server_name: this server's Matrix server name.
    :ivar public_baseurl: the URL clients reach the Client-Server API at, ending in ``/``.
    :ivar serve_server_wellknown: serve ``/.well-known/matrix/server`` pointing at port 443.
    :ivar pid_file: where to write the process ID, or ``None``.
    :ivar log_config: a Python ``logging`` configuration file (YAML dictConfig), or ``None``.
    :ivar default_room_version: the room version used by ``createRoom`` when the client names none.
    :ivar allow_public_rooms_without_auth: whether ``GET /publicRooms`` works without an access token.
    :ivar allow_public_rooms_over_federation: whether other servers may read our room directory.
    """

    server_name: str
    public_baseurl: str
    serve_server_wellknown: bool = False
    pid_file: str | None = None
    log_config: str | None = None
    default_room_version: str = DEFAULT_ROOM_VERSION
    allow_public_rooms_without_auth: bool = False
    allow_public_rooms_over_federation: bool = False

    @classmethod
    def read(cls, reader: ConfigReader) -> "ServerConfig":
        """Read the top-level server keys."""
        server_name = reader.string("server_name", REQUIRED)
        try:
            split_server_name(server_name)
        except ValueError as e:
            raise ConfigError(
                "server_name", f"{server_name!r} is not a valid Matrix server name: {e}"
            )

        public_baseurl = reader.string("public_baseurl", None)
        if public_baseurl is None:
            public_baseurl = f"https://{server_name}/"
        parts = urlsplit(public_baseurl)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                "public_baseurl", f"must be an http:// or https:// URL, not {public_baseurl!r}"
            )
        if not public_baseurl.endswith("/"):
            public_baseurl += "/"

        default_room_version = reader.raw("default_room_version", DEFAULT_ROOM_VERSION)
        default_room_version = str(default_room_version)
        if default_room_version not in ROOM_VERSIONS:
            raise ConfigError(
                "default_room_version",
                f"unknown room version {default_room_version!r}; known versions: {', '.join(ROOM_VERSIONS)}",
            )

        log_config = reader.path("log_config", None)
        return cls(
            server_name=server_name,
            public_baseurl=public_baseurl,
            serve_server_wellknown=reader.boolean("serve_server_wellknown", False),
            pid_file=reader.path("pid_file", None),
            log_config=log_config,
            default_room_version=default_room_version,
            allow_public_rooms_without_auth=reader.boolean(
                "allow_public_rooms_without_auth", False
            ),
            allow_public_rooms_over_federation=reader.boolean(
                "allow_public_rooms_over_federation", False
            ),
        )
