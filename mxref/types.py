"""Matrix identifiers as immutable values: server names, user IDs, room IDs, room aliases, event IDs.

Each type has ``parse(text)``, which checks the grammar and length limit, and
``str(value)``, which gives the identifier back, so ``X.parse(str(x)) == x``.
Constructing a type directly checks the same rules, so every instance is
valid. Anything that breaks a rule, including input that is not a string at
all, raises :class:`mxref.errors.InvalidIdentifier` with a message naming the
broken rule. This module also checks the smaller grammars: room versions,
namespaced identifiers, opaque identifiers and signing key IDs.

Spec (v1.19):

- Appendices, "Identifier Grammar"
  (https://spec.matrix.org/v1.19/appendices/#identifier-grammar): "Server Name",
  "User Identifiers" and "Historical User IDs", "Room IDs" (with the
  domain-less form of room version 12), "Room Aliases", "Event IDs", "Common
  Namespaced Identifier Grammar", and "Opaque Identifiers"
  (https://spec.matrix.org/v1.19/appendices/#opaque-identifiers).
- Room Versions, "Room version grammar"
  (https://spec.matrix.org/v1.19/rooms/#room-version-grammar).
- Event ID formats: room version 1 ("Event IDs", ``$opaque_id:domain``),
  room version 3 (unpadded standard base64 of the reference hash) and room
  version 4 (unpadded URL-safe base64); room version 12 makes the room ID
  the create event's ID with the sigil ``!``.
- Server-Server API, "Publishing Keys": a key ID is ``algorithm:version``
  with the version from ``[a-zA-Z0-9_]``.
- Client-Server API, registration: an unusable new username is refused with
  ``M_INVALID_USERNAME``.

The 255-byte limits are measured on the UTF-8 encoding, so one non-ASCII
character of a historical localpart can count for up to four bytes.
"""

import ipaddress
import re
from typing import Optional, Tuple, Union

import attr

from mxref.errors import InvalidIdentifier

#: The longest user ID, room ID, room alias or event ID, in UTF-8 bytes.
MAX_IDENTIFIER_BYTES = 255

#: The longest room version string, in code points.
MAX_ROOM_VERSION_LENGTH = 32

# --- Server names -------------------------------------------------------
# server_name = hostname [ ":" port ]; port = 1*5DIGIT
# hostname = IPv4address / "[" IPv6address "]" / dns-name
_PORT_RE = re.compile(r"[0-9]{1,5}")
_IPV4_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_DNS_NAME_RE = re.compile(r"[A-Za-z0-9.-]{1,255}")

# --- Localparts and hashes ------------------------------------------------
# user_id_localpart = 1*user_id_char; user_id_char = DIGIT / a-z / "-" / "." / "=" / "_" / "/" / "+"
_NEW_LOCALPART_RE = re.compile(r"[a-z0-9._=/+-]+")
# A SHA-256 reference hash is 32 bytes: 43 characters of unpadded base64.
_STANDARD_BASE64_HASH_RE = re.compile(r"[A-Za-z0-9+/]{43}")
_URL_SAFE_BASE64_HASH_RE = re.compile(r"[A-Za-z0-9_-]{43}")

# --- Smaller grammars -------------------------------------------------------
_ROOM_VERSION_RE = re.compile(r"[a-z0-9.-]{1,%d}" % MAX_ROOM_VERSION_LENGTH)
_NAMESPACED_IDENTIFIER_RE = re.compile(r"[a-z][a-z0-9._-]{0,254}")
_OPAQUE_IDENTIFIER_CHARS_RE = re.compile(r"[0-9A-Za-z._~-]+")
_KEY_VERSION_RE = re.compile(r"[a-zA-Z0-9_]+")

#: The characters the spec recommends for generated room ID localparts.
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _require_string(value, what: str) -> str:
    """Return ``value`` if it is a ``str``; otherwise raise InvalidIdentifier naming ``what``."""
    if not isinstance(value, str):
        raise InvalidIdentifier(f"{what} must be a string, not {type(value).__name__}")
    return value


# --- Server names -------------------------------------------------------


def _check_host(host) -> None:
    """Raise InvalidIdentifier unless ``host`` is an IPv4 literal, ``[IPv6]`` or a DNS name."""
    _require_string(host, "server name host")
    if not host:
        raise InvalidIdentifier("server name has an empty host")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidIdentifier(f"IPv6 literal {host!r} has no closing ']'")
        address = host[1:-1]
        if not _IPV6_CHARS_RE.fullmatch(address):
            raise InvalidIdentifier(
                f"IPv6 literal {host!r} must hold 2 to 45 characters of 0-9, A-F, a-f, ':' and '.'"
            )
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise InvalidIdentifier(f"{address!r} is not a valid IPv6 address") from None
        return
    quad = _IPV4_RE.fullmatch(host)
    if quad:
        if any(int(number) > 255 for number in quad.groups()):
            raise InvalidIdentifier(f"IPv4 literal {host!r} has a number above 255")
        return
    if not _DNS_NAME_RE.fullmatch(host):
        raise InvalidIdentifier(
            f"host {host!r} is not an IPv4 literal, a bracketed IPv6 literal, or a DNS name "
            "of 1 to 255 characters from A-Z, a-z, 0-9, '-' and '.'"
        )


def _check_port_number(port) -> None:
    """Raise InvalidIdentifier unless ``port`` is an ``int`` from 1 to 65535."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidIdentifier(f"port must be an integer, not {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise InvalidIdentifier(f"port {port} is outside 1 to 65535")


def _parse_port(text: str) -> int:
    """Turn the digits after ``:`` into a port number, or raise InvalidIdentifier.

    A port written with a leading zero (``example.org:08448``) is refused:
    it would give one server two spellings, and server names are compared
    as strings.
    """
    if not _PORT_RE.fullmatch(text):
        raise InvalidIdentifier(f"port {text!r} must be 1 to 5 digits")
    if text.startswith("0"):
        raise InvalidIdentifier(f"port {text!r} must not start with 0")
    port = int(text)
    _check_port_number(port)
    return port


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ServerName:
    """A homeserver's name: a host and an optional port, e.g. ``matrix.org:8888``.

    Server names are compared case-sensitively: ``MATRIX.ORG`` and
    ``matrix.org`` are different servers.
    """

    #: The hostname as written: a DNS name, an IPv4 dotted quad, or an IPv6
    #: literal *with* its square brackets (``[1234:5678::abcd]``).
    host: str
    #: The explicit port, or None when the server name has none.
    port: Optional[int] = None

    def __attrs_post_init__(self):
        _check_host(self.host)
        if self.port is not None:
            _check_port_number(self.port)

    @classmethod
    def parse(cls, text) -> "ServerName":
        """Parse ``text`` as ``hostname [":" port]``; raise InvalidIdentifier if it is not one."""
        _require_string(text, "server name")
        if not text:
            raise InvalidIdentifier("server name is empty")
        if text.startswith("["):
            close = text.find("]")
            if close < 0:
                raise InvalidIdentifier(f"IPv6 literal in {text!r} has no closing ']'")
            host, rest = text[: close + 1], text[close + 1 :]
            if rest and not rest.startswith(":"):
                raise InvalidIdentifier(f"unexpected {rest!r} after the IPv6 literal in {text!r}")
            port_text = rest[1:] if rest else None
        else:
            host, colon, port_text = text.partition(":")
            if not colon:
                port_text = None
        port = _parse_port(port_text) if port_text is not None else None
        return cls(host, port)

    def __str__(self) -> str:
        if self.port is None:
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def ip_address(self) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
        """The IP address when the host is an IP literal, else None."""
        if self.host.startswith("["):
            return ipaddress.IPv6Address(self.host[1:-1])
        if _IPV4_RE.fullmatch(self.host):
            return ipaddress.IPv4Address(".".join(str(int(n)) for n in self.host.split(".")))
        return None

    @property
    def is_ip_literal(self) -> bool:
        """True when the host is an IPv4 or IPv6 literal rather than a DNS name."""
        return self.ip_address is not None

    @property
    def unbracketed_host(self) -> str:
        """The host to connect to: as :attr:`host`, but an IPv6 literal loses its brackets."""
        if self.host.startswith("["):
            return self.host[1:-1]
        return self.host


def is_valid_server_name(text) -> bool:
    """Return True if ``text`` is a string matching the server name grammar."""
    try:
        ServerName.parse(text)
    except InvalidIdentifier:
        return False
    return True


def _check_server_name(text, what: str) -> None:
    """Raise InvalidIdentifier, naming the identifier ``what``, unless ``text`` is a server name."""
    try:
        ServerName.parse(text)
    except InvalidIdentifier as e:
        raise InvalidIdentifier(f"{what} has an invalid server name: {e.msg}") from None


# --- Helpers shared by the sigil identifiers --------------------------------


def _check_localpart_code_points(localpart, what: str) -> None:
    """Raise InvalidIdentifier if ``localpart`` holds ``:``, NUL or a lone surrogate.

    This is the loosest localpart rule in the spec: historical user IDs,
    room ID and room alias localparts may hold any other code point,
    control characters included.
    """
    _require_string(localpart, f"{what} localpart")
    for char in localpart:
        if char == ":":
            raise InvalidIdentifier(f"{what} localpart {localpart!r} contains ':'")
        if char == "\x00":
            raise InvalidIdentifier(f"{what} localpart {localpart!r} contains NUL")
        if "\ud800" <= char <= "\udfff":
            raise InvalidIdentifier(f"{what} localpart {localpart!r} contains a lone surrogate")


def _check_byte_length(identifier: str, what: str) -> None:
    """Raise InvalidIdentifier if ``identifier`` is longer than 255 bytes in UTF-8."""
    length = len(identifier.encode("utf-8"))
    if length > MAX_IDENTIFIER_BYTES:
        raise InvalidIdentifier(
            f"{what} is {length} bytes long; the limit is {MAX_IDENTIFIER_BYTES} bytes"
        )


def _split_sigil(text, sigil: str, what: str) -> Tuple[str, Optional[str]]:
    """Check ``text`` is a string starting with ``sigil``; split it at its first ``:``.

    Returns ``(localpart, server_name)``, with ``server_name`` None when
    there is no ``:``.
    """
    _require_string(text, what)
    if not text.startswith(sigil):
        raise InvalidIdentifier(f"{what} {text!r} does not start with {sigil!r}")
    localpart, colon, server_name = text[1:].partition(":")
    return localpart, (server_name if colon else None)


def _split_sigil_and_server(text, sigil: str, what: str) -> Tuple[str, str]:
    """As :func:`_split_sigil`, but the ``:server_name`` part is required."""
    localpart, server_name = _split_sigil(text, sigil, what)
    if server_name is None:
        raise InvalidIdentifier(f"{what} {text!r} has no ':' before a server name")
    return localpart, server_name


def _room_version_of(room_version):
    """Return the RoomVersion for ``room_version`` (a RoomVersion or its identifier).

    Raises InvalidIdentifier with ``M_UNSUPPORTED_ROOM_VERSION`` for a
    version mxref does not know. The import is local because the events
    package itself uses this module.
    """
    from mxref.events.room_versions import UnsupportedRoomVersion, get_room_version

    try:
        return get_room_version(room_version)
    except UnsupportedRoomVersion:
        raise InvalidIdentifier(
            f"unsupported room version {room_version!r}", errcode="M_UNSUPPORTED_ROOM_VERSION"
        ) from None


# --- User IDs -------------------------------------------------------------


def is_valid_localpart(localpart) -> bool:
    """Return True if ``localpart`` may name a new user: non-empty, only ``a-z 0-9 . _ = - / +``."""
    return isinstance(localpart, str) and _NEW_LOCALPART_RE.fullmatch(localpart) is not None


def validate_new_localpart(localpart, server_name: Optional[str] = None) -> None:
    """Check a localpart requested at registration; return None or raise InvalidIdentifier.

    :param localpart: the requested localpart.
    :param server_name: our server name; when given, the whole user ID
        ``@localpart:server_name`` must also fit in 255 bytes.
    :raises InvalidIdentifier: with errcode ``M_INVALID_USERNAME``.
    """
    if not isinstance(localpart, str):
        raise InvalidIdentifier(
            f"username must be a string, not {type(localpart).__name__}", errcode="M_INVALID_USERNAME"
        )
    if not localpart:
        raise InvalidIdentifier("username is empty", errcode="M_INVALID_USERNAME")
    if not is_valid_localpart(localpart):
        raise InvalidIdentifier(
            f"username {localpart!r} may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
            errcode="M_INVALID_USERNAME",
        )
    if server_name is not None:
        try:
            UserID(localpart, server_name)
        except InvalidIdentifier as e:
            raise InvalidIdentifier(e.msg, errcode="M_INVALID_USERNAME") from None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class UserID:
    """A user ID, ``@localpart:server_name``.

    An instance satisfies the historical grammar, which servers must accept
    from others: any localpart without ``:``, NUL or lone surrogates, even an
    empty one. ``UserID.parse(text, strict=True)`` also demands the current
    grammar that new users must follow.
    """

    localpart: str
    #: The server name of the homeserver that allocated the user, as a string.
    server_name: str

    SIGIL = "@"

    def __attrs_post_init__(self):
        _check_localpart_code_points(self.localpart, "user ID")
        _check_server_name(self.server_name, "user ID")
        _check_byte_length(str(self), "user ID")

    @classmethod
    def parse(cls, text, strict: bool = False) -> "UserID":
        """Parse ``@localpart:server_name``; raise InvalidIdentifier if ``text`` is not one.

        :param strict: when True, the localpart must follow the current
            grammar (non-empty, ``a-z 0-9 . _ = - / +``), as for users we
            create; when False, the historical grammar accepted from other
            servers applies.
        """
        localpart, server_name = _split_sigil_and_server(text, cls.SIGIL, "user ID")
        user_id = cls(localpart, server_name)
        if strict and not is_valid_localpart(localpart):
            raise InvalidIdentifier(
                f"user ID {text!r}: the localpart must be non-empty and contain only "
                "a-z, 0-9, '.', '_', '=', '-', '/' and '+'"
            )
        return user_id

    def __str__(self) -> str:
        return f"{self.SIGIL}{self.localpart}:{self.server_name}"

    @property
    def domain(self) -> str:
        """The server name (the spec's name for this part is ``domain``)."""
        return self.server_name

    @property
    def is_compliant(self) -> bool:
        """False for the spec's "non-compliant" IDs: empty localpart, or characters outside U+0021-U+007E.

        Servers must accept such users in events, but should not pass their
        IDs to clients outside events (for example in device list updates).
        """
        return bool(self.localpart) and all("\x21" <= c <= "\x7e" for c in self.localpart)


# --- Room IDs -------------------------------------------------------------


def is_v12_room_id(text) -> bool:
    """Return True if ``text`` has the room version 12 form: ``!`` + 43 characters of URL-safe base64."""
    return (
        isinstance(text, str)
        and text.startswith("!")
        and _URL_SAFE_BASE64_HASH_RE.fullmatch(text[1:]) is not None
    )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomID:
    """A room ID: ``!opaque_id:server_name`` (room versions 1-11) or ``!hash`` (room version 12).

    In the room version 12 form the opaque part is the create event's
    reference hash in URL-safe unpadded base64, and there is no server name.
    """

    opaque_id: str
    #: The server name of the room's creator's server, or None for a v12 room ID.
    server_name: Optional[str] = None

    SIGIL = "!"

    def __attrs_post_init__(self):
        if self.server_name is None:
            _require_string(self.opaque_id, "room ID")
            if not _URL_SAFE_BASE64_HASH_RE.fullmatch(self.opaque_id):
                raise InvalidIdentifier(
                    f"room ID {str(self)!r} has no ':server_name', so it must be the room version 12 "
                    "form: '!' and 43 characters of URL-safe unpadded base64"
                )
            return
        _check_localpart_code_points(self.opaque_id, "room ID")
        _check_server_name(self.server_name, "room ID")
        _check_byte_length(str(self), "room ID")

    @classmethod
    def parse(cls, text, room_version=None) -> "RoomID":
        """Parse a room ID; raise InvalidIdentifier if ``text`` is not one.

        :param room_version: optional; a
            :class:`mxref.events.room_versions.RoomVersion` or its identifier.
            When given, the room ID must have that version's form (with a
            server name before room version 12, without one from 12).
        """
        opaque_id, server_name = _split_sigil(text, cls.SIGIL, "room ID")
        room_id = cls(opaque_id, server_name)
        if room_version is not None:
            version = _room_version_of(room_version)
            if version.room_id_from_create_event and server_name is not None:
                raise InvalidIdentifier(
                    f"room ID {text!r}: room version {version.identifier} room IDs have no server name"
                )
            if not version.room_id_from_create_event and server_name is None:
                raise InvalidIdentifier(
                    f"room ID {text!r}: room version {version.identifier} needs '!opaque_id:server_name'"
                )
        return room_id

    def __str__(self) -> str:
        if self.server_name is None:
            return f"{self.SIGIL}{self.opaque_id}"
        return f"{self.SIGIL}{self.opaque_id}:{self.server_name}"

    @property
    def create_event_id(self) -> Optional[str]:
        """For a room version 12 room ID, the ID of the room's create event (``$`` + hash); else None."""
        if self.server_name is None:
            return f"${self.opaque_id}"
        return None


# --- Room aliases ---------------------------------------------------------


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomAlias:
    """A room alias, ``#localpart:server_name``; the localpart may be any code point but ``:`` and NUL."""

    localpart: str
    #: The server name of the homeserver that holds the alias and answers lookups for it.
    server_name: str

    SIGIL = "#"

    def __attrs_post_init__(self):
        _check_localpart_code_points(self.localpart, "room alias")
        _check_server_name(self.server_name, "room alias")
        _check_byte_length(str(self), "room alias")

    @classmethod
    def parse(cls, text) -> "RoomAlias":
        """Parse ``#localpart:server_name``; raise InvalidIdentifier if ``text`` is not one."""
        localpart, server_name = _split_sigil_and_server(text, cls.SIGIL, "room alias")
        return cls(localpart, server_name)

    def __str__(self) -> str:
        return f"{self.SIGIL}{self.localpart}:{self.server_name}"

    @property
    def domain(self) -> str:
        """The server name (the spec's name for this part is ``domain``)."""
        return self.server_name


# --- Event IDs ------------------------------------------------------------


@attr.s(frozen=True, slots=True, auto_attribs=True)
class EventID:
    """An event ID, in one of the three formats of the room versions.

    - Rooms v1, v2: ``$opaque_id:server_name``, chosen by the sending server.
    - Room v3: ``$`` + the reference hash in unpadded standard base64 (43
      characters, may contain ``+`` and ``/``).
    - Rooms v4 onwards: ``$`` + the reference hash in unpadded URL-safe
      base64 (43 characters, may contain ``-`` and ``_``).
    """

    opaque_id: str
    #: The server name of a v1/v2 event ID, or None for a hash event ID.
    server_name: Optional[str] = None

    SIGIL = "$"

    def __attrs_post_init__(self):
        if self.server_name is None:
            _require_string(self.opaque_id, "event ID")
            if not (
                _STANDARD_BASE64_HASH_RE.fullmatch(self.opaque_id)
                or _URL_SAFE_BASE64_HASH_RE.fullmatch(self.opaque_id)
            ):
                raise InvalidIdentifier(
                    f"event ID {str(self)!r} has no ':server_name', so it must be '$' and a "
                    "43-character unpadded base64 reference hash (room version 3 and later)"
                )
            return
        _check_localpart_code_points(self.opaque_id, "event ID")
        _check_server_name(self.server_name, "event ID")
        _check_byte_length(str(self), "event ID")

    @classmethod
    def parse(cls, text, room_version=None) -> "EventID":
        """Parse an event ID; raise InvalidIdentifier if ``text`` is not one.

        :param room_version: optional; a
            :class:`mxref.events.room_versions.RoomVersion` or its identifier.
            Without it, any of the three formats is accepted; with it, only
            the format of that version's ``event_format``.
        """
        opaque_id, server_name = _split_sigil(text, cls.SIGIL, "event ID")
        event_id = cls(opaque_id, server_name)
        if room_version is not None:
            _check_event_id_format(event_id, _room_version_of(room_version))
        return event_id

    def __str__(self) -> str:
        if self.server_name is None:
            return f"{self.SIGIL}{self.opaque_id}"
        return f"{self.SIGIL}{self.opaque_id}:{self.server_name}"


def _check_event_id_format(event_id: EventID, version) -> None:
    """Raise InvalidIdentifier unless ``event_id`` has the format of room version ``version``."""
    from mxref.events.room_versions import EventFormat

    text = str(event_id)
    if version.event_format is EventFormat.V1:
        if event_id.server_name is None:
            raise InvalidIdentifier(
                f"event ID {text!r}: room version {version.identifier} needs '$opaque_id:server_name'"
            )
    elif version.event_format is EventFormat.V2:
        if event_id.server_name is not None or not _STANDARD_BASE64_HASH_RE.fullmatch(event_id.opaque_id):
            raise InvalidIdentifier(
                f"event ID {text!r}: room version {version.identifier} needs '$' and 43 characters "
                "of unpadded standard base64"
            )
    else:
        if event_id.server_name is not None or not _URL_SAFE_BASE64_HASH_RE.fullmatch(event_id.opaque_id):
            raise InvalidIdentifier(
                f"event ID {text!r}: room version {version.identifier} needs '$' and 43 characters "
                "of unpadded URL-safe base64"
            )


# --- Room versions, namespaced and opaque identifiers, key IDs ---------------


def validate_room_version_string(text) -> str:
    """Return ``text`` if it follows the room version grammar: 1-32 characters of ``a-z 0-9 . -``.

    This checks only the grammar; whether mxref supports the version is a
    separate question (:func:`mxref.events.room_versions.get_room_version`).

    :raises InvalidIdentifier: when the grammar is broken.
    """
    _require_string(text, "room version")
    if not _ROOM_VERSION_RE.fullmatch(text):
        raise InvalidIdentifier(
            f"room version {text!r} must be 1 to {MAX_ROOM_VERSION_LENGTH} characters of a-z, 0-9, '.' and '-'"
        )
    return text


def is_valid_namespaced_identifier(text) -> bool:
    """Return True if ``text`` follows the Common Namespaced Identifier Grammar.

    That is 1-255 characters, starting with ``a-z``, from ``a-z 0-9 - _ .``.
    (Identifiers starting ``m.`` are reserved to the spec but still valid.)
    """
    return isinstance(text, str) and _NAMESPACED_IDENTIFIER_RE.fullmatch(text) is not None


def is_valid_opaque_identifier(text, max_length: int = 255) -> bool:
    """Return True if ``text`` follows the Opaque Identifier Grammar.

    :param max_length: the longest allowed length; 255 unless the spec
        says otherwise for a particular identifier.
    """
    return (
        isinstance(text, str)
        and 1 <= len(text) <= max_length
        and _OPAQUE_IDENTIFIER_CHARS_RE.fullmatch(text) is not None
    )


def parse_key_id(text) -> Tuple[str, str]:
    """Split a signing key ID such as ``ed25519:abc123`` into ``(algorithm, version)``.

    The spec constrains the version to ``[a-zA-Z0-9_]``; the algorithm must
    be non-empty.

    :raises InvalidIdentifier: when ``text`` is not ``algorithm:version``.
    """
    _require_string(text, "key ID")
    algorithm, colon, version = text.partition(":")
    if not colon:
        raise InvalidIdentifier(f"key ID {text!r} has no ':' between algorithm and version")
    if not algorithm:
        raise InvalidIdentifier(f"key ID {text!r} has an empty algorithm")
    if not _KEY_VERSION_RE.fullmatch(version):
        raise InvalidIdentifier(
            f"key ID {text!r}: the version must be one or more of a-z, A-Z, 0-9 and '_'"
        )
    return algorithm, version


def generate_opaque_id(length: int, rng) -> str:
    """Return ``length`` random characters from ``A-Z a-z 0-9``.

    The result suits room ID localparts (the spec recommends letters and
    digits) and the Opaque Identifier Grammar.

    :param length: how many characters, at least 1.
    :param rng: a source of randomness with ``choice(sequence)``, such as
        ``secrets.SystemRandom()``; tests pass a seeded ``random.Random``.
    """
    if length < 1:
        raise ValueError(f"an opaque ID needs at least 1 character, not {length}")
    return "".join(rng.choice(_ALPHANUMERIC) for _ in range(length))
