"""Hash and check user passwords with bcrypt, off the reactor thread.

Passwords are prepared exactly as Synapse prepares them, so that password
hashes imported from a Synapse database keep working: Unicode NFKC
normalisation, UTF-8 encoding, then the server's optional "pepper" appended.
bcrypt reads only the first 72 bytes; the prepared bytes are cut there
explicitly (bcrypt >= 5 refuses longer input instead of cutting it).

The spec leaves password storage to the server (Client-Server API, "Password-based"
login type, ``m.login.password``); it only says the server checks the password.
"""

import re
import unicodedata

import bcrypt
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool

#: bcrypt looks at no more than this many bytes of a password.
BCRYPT_MAX_BYTES = 72

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def prepare_password(password: str, pepper: str = "") -> bytes:
    """The bytes bcrypt hashes for ``password``: NFKC, UTF-8, pepper appended, cut to 72 bytes."""
    data = unicodedata.normalize("NFKC", password).encode("utf-8") + pepper.encode("utf-8")
    return data[:BCRYPT_MAX_BYTES]


class PasswordHasher:
    """Hashes passwords and checks them against stored bcrypt hashes.

    bcrypt is deliberately slow, so the work runs in a thread pool: pass the
    reactor and its pool (``reactor.getThreadPool()``). Tests use
    :meth:`synchronous`, which does the work inline.

    :param reactor: the reactor that results are delivered on.
    :param threadpool: the ``twisted.python.threadpool.ThreadPool`` to hash in.
    :param rounds: the bcrypt cost for new hashes (2**rounds iterations);
        Synapse's default is 12. Checking uses the cost stored in each hash.
    :param pepper: a server secret appended to every password (Synapse's
        ``password_config.pepper``); changing it invalidates all hashes.
    """

    def __init__(self, reactor, threadpool, rounds: int = 12, pepper: str = ""):
        if not 4 <= rounds <= 31:
            raise ValueError("bcrypt rounds must be between 4 and 31")
        self._rounds = rounds
        self._pepper = pepper
        if threadpool is None:
            self._run = defer.maybeDeferred
        else:
            self._run = lambda function, *args: deferToThreadPool(reactor, threadpool, function, *args)

    @classmethod
    def synchronous(cls, rounds: int = 4, pepper: str = "") -> "PasswordHasher":
        """A hasher that works inline on the calling thread (for tests and command-line tools)."""
        return cls(None, None, rounds=rounds, pepper=pepper)

    def hash_password(self, password: str):
        """Hash a new password.

        :param password: the password as the user typed it.
        :returns: a Deferred firing with the ``$2b$...`` hash as a ``str``.
        """
        def do_hash():
            salt = bcrypt.gensalt(self._rounds)
            return bcrypt.hashpw(prepare_password(password, self._pepper), salt).decode("ascii")

        return self._run(do_hash)

    def check_password(self, password: str, stored_hash):
        """Check a password against a stored hash (ours or one imported from Synapse).

        The comparison is constant-time (``bcrypt.checkpw``). A missing or
        malformed stored hash (for example an account that has no password)
        never matches.

        :param password: the password the user gave.
        :param stored_hash: the stored ``$2a$``/``$2b$``/``$2y$`` hash (str or bytes), or None.
        :returns: a Deferred firing with ``True`` or ``False``.
        """
        if isinstance(stored_hash, bytes):
            stored_hash = stored_hash.decode("ascii", "replace")
        if not stored_hash or not _BCRYPT_HASH.fullmatch(stored_hash):
            return defer.succeed(False)

        def do_check():
            try:
                return bcrypt.checkpw(prepare_password(password, self._pepper), stored_hash.encode("ascii"))
            except ValueError:
                return False

        return self._run(do_check)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether a stored hash uses a lower cost than this hasher's, so it should be replaced at next login."""
        match = _BCRYPT_HASH.fullmatch(stored_hash or "")
        return match is None or int(match.group(1)) < self._rounds
