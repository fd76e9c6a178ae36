"""The message authentication code of Synapse's shared-secret registration API.

``/_synapse/admin/v1/register`` is not part of the Matrix spec; it is
Synapse's admin API, kept so that Synapse's ``register_new_matrix_user`` and
mxref's ``mxref-register`` work against either server. The protocol:

1. ``GET /_synapse/admin/v1/register`` answers ``{"nonce": "<random>"}``.
2. ``POST /_synapse/admin/v1/register`` with ``{nonce, username, password,
   admin, mac}`` (and optionally ``user_type``), where ``mac`` is the
   lower-case hex HMAC-SHA1, keyed with ``registration_shared_secret``, of::

       nonce NUL username NUL password NUL ("admin" | "notadmin") [NUL user_type]

   all encoded as UTF-8. Each nonce may be used once.

Both the client (``mxref.register_user``) and the server endpoint compute
the MAC with :func:`compute_registration_mac`.
"""

import hashlib
import hmac


def compute_registration_mac(
    secret: str, nonce: str, user: str, password: str, admin: bool, user_type: str | None = None
) -> str:
    """The hex HMAC-SHA1 a shared-secret registration request must carry as ``mac``.

    :param secret: the server's ``registration_shared_secret``.
    :param nonce: the nonce the server handed out.
    :param user: the localpart (``username`` field) as sent.
    :param password: the password as sent.
    :param admin: whether the new account is a server admin.
    :param user_type: Synapse's optional user type (e.g. ``"bot"``), or ``None``.
    :returns: 40 lower-case hex digits (not a Deferred).
    """
    message = b"\x00".join(
        [
            nonce.encode("utf-8"),
            user.encode("utf-8"),
            password.encode("utf-8"),
            b"admin" if admin else b"notadmin",
        ]
    )
    if user_type is not None:
        message += b"\x00" + user_type.encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha1).hexdigest()


def registration_mac_matches(
    secret: str,
    mac: str,
    nonce: str,
    user: str,
    password: str,
    admin: bool,
    user_type: str | None = None,
) -> bool:
    """Whether ``mac`` is the right MAC for the other arguments (compared in constant time)."""
    expected = compute_registration_mac(secret, nonce, user, password, admin, user_type)
    return hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace"))
