"""The ``X-Matrix`` Authorization header: signing outbound federation requests and parsing inbound ones.

Spec: Server-Server API, "Authentication" > "Request Authentication"
(https://spec.matrix.org/v1.19/server-server-api/#request-authentication).
A request is authenticated by signing, with the JSON signing algorithm, the object::

    {"method": ..., "uri": ..., "origin": ..., "destination": ..., "content": <body>}

where ``uri`` is the path starting ``/_matrix/`` including any ``?query``, the
server names are those *before* delegation, and ``content`` is left out when
the request has no body. The signature travels in
``Authorization: X-Matrix origin="o",destination="d",key="ed25519:k",sig="..."``.

Parsing follows the auth-param grammar of RFC 9110 as the spec summarises it:
parameter names are case-insensitive and come in any order; a value may be a
token or a quoted string with backslash escapes; recipients accept unquoted
values holding ``:``; unknown parameters are ignored. The spec's parameter list
calls the signature ``signature`` but its example (and every deployed server)
uses ``sig``: we send ``sig`` and accept either.

Checking the signature against the origin's key is done by
:class:`mxref.federation.transport.server.FederationRequestAuthenticator`.
"""

import attr

from mxref.errors import MatrixError
from mxref.events.signing import key_id_of, sign_json

#: The authorization scheme name (compared case-insensitively on receipt).
SCHEME = "X-Matrix"

#: Characters of an RFC 9110 ``token`` besides letters and digits.
_TOKEN_SYMBOLS = set("!#$%&'*+-.^_`|~")


@attr.s(frozen=True, slots=True)
class XMatrixCredentials:
    """The parameters of one ``X-Matrix`` header.

    :ivar origin: the sending server's name.
    :ivar destination: our server name as the sender wrote it, or ``None`` when
        the (pre-v1.3) sender left it out.
    :ivar key_id: the sender's key ID, e.g. ``"ed25519:abc"``.
    :ivar signature: the unpadded base64 signature.
    """

    origin = attr.ib()
    destination = attr.ib()
    key_id = attr.ib()
    signature = attr.ib()


def request_signing_json(method: str, uri: str, origin: str, destination: str, content=None) -> dict:
    """Return the JSON object whose signature authenticates a request (step 1 of the spec).

    :param method: the HTTP method, e.g. ``"PUT"``.
    :param uri: the path and query exactly as sent, e.g. ``"/_matrix/federation/v1/send/1"``.
    :param origin: the sending server's name.
    :param destination: the receiving server's name.
    :param content: the parsed JSON body, or ``None`` when the request has none
        (then ``content`` is left out of the object).
    :returns: a new dict (not a Deferred).
    """
    signed = {"method": method, "uri": uri, "origin": origin, "destination": destination}
    if content is not None:
        signed["content"] = content
    return signed


def sign_request(signing_key, origin: str, destination: str, method: str, uri: str, content=None) -> str:
    """Return the ``Authorization`` header value authenticating one outbound request.

    :param signing_key: our signing key (with ``.alg`` and ``.version``).
    :param origin: our server name.
    :param destination: the server name the request is for (before delegation).
    :param method: the HTTP method.
    :param uri: the path and query exactly as sent.
    :param content: the JSON body, or ``None``.
    :returns: ``X-Matrix origin="...",destination="...",key="...",sig="..."`` (not a Deferred).
    """
    signed = sign_json(request_signing_json(method, uri, origin, destination, content), origin, signing_key)
    key_id = key_id_of(signing_key)
    signature = signed["signatures"][origin][key_id]
    parameters = (("origin", origin), ("destination", destination), ("key", key_id), ("sig", signature))
    return SCHEME + " " + ",".join(f"{name}={_quote(value)}" for name, value in parameters)


def _quote(value: str) -> str:
    """A quoted-string; server names, key IDs and base64 never need escapes, but escape anyway."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unauthorized(reason: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", f"Malformed X-Matrix Authorization header: {reason}")


def _is_token_char(character: str) -> bool:
    return character.isascii() and (character.isalnum() or character in _TOKEN_SYMBOLS)


def _parse_parameters(text: str) -> dict:
    """Parse ``name=value`` pairs separated by commas into ``{lower-case name: value}``.

    :raises MatrixError: 401 for anything that does not fit the grammar, or a
        parameter given twice.
    """
    parameters = {}
    position = 0
    length = len(text)

    def skip_spaces(at):
        while at < length and text[at] in " \t":
            at += 1
        return at

    while True:
        # Empty list elements (",,") are allowed by the list syntax.
        position = skip_spaces(position)
        while position < length and text[position] == ",":
            position = skip_spaces(position + 1)
        if position >= length:
            break
        start = position
        while position < length and _is_token_char(text[position]):
            position += 1
        name = text[start:position].lower()
        if not name:
            raise _unauthorized(f"expected a parameter name at position {start}")
        position = skip_spaces(position)
        if position >= length or text[position] != "=":
            raise _unauthorized(f"parameter {name!r} has no value")
        position = skip_spaces(position + 1)
        if position < length and text[position] == '"':
            position += 1
            characters = []
            while True:
                if position >= length:
                    raise _unauthorized(f"unterminated quoted value for {name!r}")
                character = text[position]
                if character == "\\":
                    if position + 1 >= length:
                        raise _unauthorized(f"dangling backslash in {name!r}")
                    characters.append(text[position + 1])
                    position += 2
                elif character == '"':
                    position += 1
                    break
                else:
                    characters.append(character)
                    position += 1
            value = "".join(characters)
        else:
            # A token, or (for older senders) any unquoted run without spaces, commas or quotes.
            start = position
            while position < length and text[position] not in ' \t,"':
                position += 1
            value = text[start:position]
            if not value:
                raise _unauthorized(f"parameter {name!r} has an empty value")
        if name in parameters:
            raise _unauthorized(f"parameter {name!r} is given twice")
        parameters[name] = value
        position = skip_spaces(position)
        if position < length and text[position] != ",":
            raise _unauthorized(f"expected ',' at position {position}")
    return parameters


def parse_authorization_header(value) -> XMatrixCredentials:
    """Parse an ``Authorization: X-Matrix ...`` header value.

    :param value: the header value, ``str`` or ``bytes`` (decoded as UTF-8).
    :returns: the :class:`XMatrixCredentials` (not a Deferred). The signature
        is not checked here.
    :raises MatrixError: 401 ``M_UNAUTHORIZED`` when the scheme is not
        ``X-Matrix``, the header is malformed, or ``origin``, ``key`` or the
        signature (``sig``, or ``signature``) is missing.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _unauthorized("not UTF-8") from None
    scheme, separator, rest = value.partition(" ")
    if scheme.lower() != SCHEME.lower() or not separator:
        raise MatrixError(401, "M_UNAUTHORIZED", "Authorization header is not of the X-Matrix scheme")
    parameters = _parse_parameters(rest)
    origin = parameters.get("origin")
    key_id = parameters.get("key")
    signature = parameters.get("sig", parameters.get("signature"))
    for name, found in (("origin", origin), ("key", key_id), ("sig", signature)):
        if not found:
            raise _unauthorized(f"missing {name!r}")
    if ":" not in key_id:
        raise _unauthorized(f"key {key_id!r} is not of the form <algorithm>:<version>")
    return XMatrixCredentials(origin, parameters.get("destination"), key_id, signature)
