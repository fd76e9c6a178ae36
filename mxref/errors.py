"""Matrix errors: every failure a client or a remote server can cause, with its errcode and HTTP status.

Spec: Client-Server API, "Standard error response" and "Common error codes"
(https://spec.matrix.org/v1.19/client-server-api/#standard-error-response).
The pure core raises the subclasses below; the HTTP layer turns any
:class:`MatrixError` into ``{"errcode": ..., "error": ...}`` with its status.
"""


class MatrixError(Exception):
    """An error with a Matrix ``errcode`` and an HTTP status.

    :param code: the HTTP status code (e.g. 400).
    :param errcode: the Matrix error code (e.g. ``"M_BAD_JSON"``).
    :param msg: the human-readable ``error`` string.
    :param extra: further fields for the response body (e.g. ``retry_after_ms``).
    """

    def __init__(self, code: int, errcode: str, msg: str = "", **extra):
        super().__init__(msg or errcode)
        self.code = code
        self.errcode = errcode
        self.msg = msg or errcode
        self.extra = extra

    def to_json(self) -> dict:
        """The response body: ``errcode``, ``error`` and any extra fields."""
        body = {"errcode": self.errcode, "error": self.msg}
        body.update(self.extra)
        return body

    def __repr__(self):
        return f"{type(self).__name__}({self.code}, {self.errcode!r}, {self.msg!r})"


class InvalidIdentifier(MatrixError, ValueError):
    """An identifier (user ID, room ID, server name, ...) broke its grammar or length limit."""

    def __init__(self, msg: str, errcode: str = "M_INVALID_PARAM"):
        super().__init__(400, errcode, msg)


class InvalidEventFormat(MatrixError, ValueError):
    """An event (PDU or client-supplied content) is malformed for its room version."""

    def __init__(self, msg: str):
        super().__init__(400, "M_BAD_JSON", msg)


class SignatureError(MatrixError):
    """A signature or content hash is missing or does not verify."""

    def __init__(self, msg: str):
        super().__init__(403, "M_FORBIDDEN", msg)


class AuthError(MatrixError):
    """An event was refused by the authorization rules.

    :param rule: the number of the refusing rule as the spec numbers it for
        the room version (e.g. ``"5.3.2"``), so that the refusal can be traced
        to the spec text.
    :param msg: what the rule says, in words.
    """

    def __init__(self, rule: str, msg: str):
        super().__init__(403, "M_FORBIDDEN", f"auth rule {rule}: {msg}")
        self.rule = rule
        self.reason = msg
