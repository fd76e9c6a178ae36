"""Real homeserver processes on loopback: Synapse and mxref, started, registered into, stopped.

End-to-end tests, interop tests and benchmarks use these to run whole servers
as separate processes on 127.0.0.1 with free ports:

- :class:`SynapseProcess` runs ``python -m synapse.app.homeserver`` from a
  separate interpreter (Synapse's pins conflict with mxref's, so it lives in
  its own venv; see ``.ci/synapse.sh`` and ``MXREF_SYNAPSE_PYTHON``).
- :class:`MxrefProcess` runs ``twistd -n mxref --config ...`` with this interpreter.
- :class:`ThrowawayPostgres` runs a private PostgreSQL cluster for either.

Both homeservers get a ``homeserver.yaml`` in Synapse's format with a plain
HTTP client listener and a TLS federation listener using a self-signed
certificate. The server name is ``localhost:<federation port>``: by the
Server-Server API's server discovery rules ("Resolving server names",
https://spec.matrix.org/v1.19/server-server-api/#resolving-server-names) a
name with an explicit port is contacted at that host and port directly, with
no ``.well-known`` or SRV lookup, which is what makes loopback federation
work. Test users are created through the shared-secret registration admin API
that Synapse defines (``/_synapse/admin/v1/register``).

The methods block (they use ``subprocess`` and ``http.client``); the
``*_deferred`` variants run them in the reactor's thread pool and return
Deferreds, for trial tests that need the reactor to keep turning meanwhile.
"""

import abc
import atexit
import datetime
import hashlib
import hmac
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from signedjson.key import generate_signing_key, write_signing_keys
from twisted.internet.threads import deferToThreadPool
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)

from mxref.testing.csclient import CSClient, MatrixRequestError, request_json

#: Rate limits so generous that no test or benchmark ever meets one.
_NO_LIMIT = {"per_second": 100000, "burst_count": 100000}


def unlimited_rate_limits() -> dict:
    """The ``rc_*`` options of Synapse's config format, each raised far beyond any test's rate."""
    return {
        "rc_message": dict(_NO_LIMIT),
        "rc_registration": dict(_NO_LIMIT),
        "rc_registration_token_validity": dict(_NO_LIMIT),
        "rc_login": {
            "address": dict(_NO_LIMIT),
            "account": dict(_NO_LIMIT),
            "failed_attempts": dict(_NO_LIMIT),
        },
        "rc_admin_redaction": dict(_NO_LIMIT),
        "rc_joins": {"local": dict(_NO_LIMIT), "remote": dict(_NO_LIMIT)},
        "rc_joins_per_room": dict(_NO_LIMIT),
        "rc_3pid_validation": dict(_NO_LIMIT),
        "rc_invites": {
            "per_room": dict(_NO_LIMIT),
            "per_user": dict(_NO_LIMIT),
            "per_issuer": dict(_NO_LIMIT),
        },
        "rc_third_party_invite": dict(_NO_LIMIT),
        "rc_room_creation": dict(_NO_LIMIT),
        "rc_presence": {"per_user": dict(_NO_LIMIT)},
        "rc_delayed_event_mgmt": dict(_NO_LIMIT),
        "rc_reports": dict(_NO_LIMIT),
        "rc_media_create": dict(_NO_LIMIT),
        "rc_federation": {
            "window_size": 1000,
            "sleep_limit": 100000,
            "sleep_delay": 0,
            "reject_limit": 100000,
            "concurrent": 100000,
        },
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it; another process
    could still take it before the caller binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_self_signed_certificate(
    cert_path: str, key_path: str, hostname: str = "localhost"
) -> None:
    """Write a self-signed TLS certificate and its RSA key as PEM files.

    The certificate names ``hostname``, ``localhost``, ``127.0.0.1`` and ``::1`` as
    subject alternative names and is valid from one day ago for ten years.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    dns_names = sorted({hostname, "localhost"})
    alt_names = [x509.DNSName(n) for n in dns_names] + [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )


def write_signing_key(path: str, version: str | None = None) -> str:
    """Write a new ed25519 signing key in Synapse's key file format
    (``ed25519 <version> <unpadded base64 seed>``); returns the key ID."""
    version = version or "a_" + secrets.token_hex(2)
    key = generate_signing_key(version)
    with open(path, "w") as f:
        write_signing_keys(f, [key])
    return f"ed25519:{version}"


def shared_secret_mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """The ``mac`` of a shared-secret registration request, hex encoded.

    HMAC-SHA1 keyed with the registration shared secret over
    ``nonce NUL user NUL password NUL ("admin" | "notadmin")``, as the
    ``/_synapse/admin/v1/register`` API defines it.
    """
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    mac.update(
        b"\x00".join(
            [nonce.encode(), user.encode(), password.encode(), b"admin" if admin else b"notadmin"]
        )
    )
    return mac.hexdigest()


def read_rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB, from ``/proc/<pid>/status`` (``VmRSS``).

    :raises LookupError: if the process is gone or has no ``VmRSS`` line.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    raise LookupError(f"no VmRSS for process {pid}")


#: Server processes started and not yet reaped, killed at interpreter exit so that a test run
#: that dies half-way leaves no server behind.
_live_processes = set()


@atexit.register
def _kill_leftover_processes() -> None:
    for process in list(_live_processes):
        if process.poll() is None:
            process.kill()
            process.wait()
    _live_processes.clear()


class HomeserverStartError(Exception):
    """A homeserver process exited or did not answer in time; the message holds its log tail."""


class HomeserverProcess(abc.ABC):
    """What :class:`SynapseProcess` and :class:`MxrefProcess` share: ports, a config file, a
    child process, readiness polling, registration through the shared-secret API.

    Subclasses provide :meth:`write_config` and :meth:`command`.

    :param workdir: a directory of its own for config, keys, database and logs (created).
    :param server_name: the Matrix server name; ``localhost:<federation port>`` by default.
    :param database: a Synapse-format ``database`` mapping; SQLite in ``workdir`` by default.
    :param config_overrides: top-level keys replacing those of the generated config.
    :param start_timeout: seconds to wait for ``/_matrix/client/versions`` to answer.
    """

    #: The name used in messages ("Synapse", "mxref").
    kind = "homeserver"

    def __init__(
        self,
        workdir: str,
        server_name: str | None = None,
        database: dict | None = None,
        config_overrides: dict | None = None,
        start_timeout: float = 60.0,
    ):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.client_port = free_port()
        self.federation_port = free_port()
        self.server_name = server_name or f"localhost:{self.federation_port}"
        self.database = database
        self.config_overrides = dict(config_overrides or {})
        self.start_timeout = start_timeout
        self.registration_shared_secret = secrets.token_hex(16)
        self.config_path = os.path.join(self.workdir, "homeserver.yaml")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.log_path = os.path.join(self.workdir, "homeserver.log")
        self.tls_certificate_path = os.path.join(self.workdir, "tls.crt")
        self.tls_private_key_path = os.path.join(self.workdir, "tls.key")
        self.signing_key_path = os.path.join(self.workdir, "signing.key")
        self.process: subprocess.Popen | None = None
        self._prepared = False

    # --- what subclasses define ------------------------------------------------------

    @abc.abstractmethod
    def write_config(self) -> None:
        """Write ``homeserver.yaml`` (and anything else the server reads) into ``workdir``."""

    @abc.abstractmethod
    def command(self) -> list:
        """The argument vector that starts the server in the foreground."""

    def environment(self) -> dict:
        """The environment of the child process."""
        return dict(os.environ)

    # --- shared config parts ---------------------------------------------------------

    @property
    def client_url(self) -> str:
        """The Client-Server API base URL, ``http://127.0.0.1:<client port>``."""
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_url(self) -> str:
        """The federation base URL, ``https://127.0.0.1:<federation port>`` (self-signed)."""
        return f"https://127.0.0.1:{self.federation_port}"

    @property
    def pid(self) -> int | None:
        """The server's process ID while it runs."""
        return self.process.pid if self.process is not None else None

    def prepare(self) -> None:
        """Write the TLS certificate, the signing key and the config, if not done yet; blocking.

        :meth:`start` calls this; call it directly to inspect the files without starting.
        """
        if self._prepared:
            return
        if not os.path.exists(self.tls_certificate_path):
            write_self_signed_certificate(self.tls_certificate_path, self.tls_private_key_path)
        if not os.path.exists(self.signing_key_path):
            write_signing_key(self.signing_key_path)
        self.write_config()
        self._prepared = True

    def common_config(self) -> dict:
        """The ``homeserver.yaml`` keys both servers understand (Synapse's format)."""
        config = {
            "server_name": self.server_name,
            "public_baseurl": self.client_url + "/",
            "listeners": [
                {
                    "port": self.client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                },
                {
                    "port": self.federation_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": True,
                    "resources": [{"names": ["federation", "keys"], "compress": False}],
                },
            ],
            "tls_certificate_path": self.tls_certificate_path,
            "tls_private_key_path": self.tls_private_key_path,
            "signing_key_path": self.signing_key_path,
            "database": self.database
            or {
                "name": "sqlite3",
                "args": {"database": os.path.join(self.workdir, "homeserver.db")},
            },
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "registration_shared_secret": self.registration_shared_secret,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_verify_certificates": False,
            "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
        }
        config.update(unlimited_rate_limits())
        return config

    def _write_yaml(self, config: dict) -> None:
        config.update(self.config_overrides)
        with open(self.config_path, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until ``/_matrix/client/versions`` answers; blocking.

        :raises HomeserverStartError: with the log tail, if it exits or does not answer in time.
        """
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.kind} is already running as process {self.process.pid}")
        self.prepare()
        with open(self.stdout_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _live_processes.add(self.process)
        try:
            self._wait_until_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise HomeserverStartError(
                    f"{self.kind} exited with status {code} before answering; log tail:\n{self.log_tail()}"
                )
            try:
                request_json(self.client_url, "GET", "/_matrix/client/versions", timeout=5)
                return
            except (OSError, MatrixRequestError):
                pass
            if time.monotonic() > deadline:
                raise HomeserverStartError(
                    f"{self.kind} did not answer /_matrix/client/versions within "
                    f"{self.start_timeout}s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = 15.0) -> int | None:
        """Stop the server with SIGTERM, then SIGKILL after ``grace`` seconds; blocking.

        :returns: its exit status (``-SIGTERM`` for twistd, which re-raises the signal after a
            clean shutdown; ``-SIGKILL`` if it had to be killed), or ``None`` if it never ran.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _live_processes.discard(self.process)
        return self.process.returncode

    def kill(self) -> int | None:
        """Kill the server with SIGKILL (a crash, no clean shutdown); blocking.

        :returns: its exit status, or ``None`` if it was not running.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _live_processes.discard(self.process)
        return self.process.returncode

    def restart(self) -> None:
        """Stop the server and start it again on the same ports, config and data; blocking."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def rss_kib(self) -> int:
        """The server process's resident set size in KiB (``VmRSS``)."""
        if self.process is None:
            raise LookupError(f"{self.kind} was never started")
        return read_rss_kib(self.process.pid)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log file and of its stdout/stderr."""
        parts = []
        for path in (self.log_path, self.stdout_path):
            try:
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-lines:]
            except FileNotFoundError:
                continue
            parts.append(f"--- {path}\n" + "".join(tail))
        return "\n".join(parts) or "(no log output)"

    # --- users -----------------------------------------------------------------------

    def register_user(self, localpart: str, password: str, admin: bool = False) -> dict:
        """Create a user through the shared-secret registration API; blocking.

        :returns: ``{"user_id", "access_token", "device_id", ...}`` as the server answered.
        :raises MatrixRequestError: if the server refuses (e.g. the user exists).
        """
        path = "/_synapse/admin/v1/register"
        nonce = request_json(self.client_url, "GET", path)[1]["nonce"]
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": shared_secret_mac(
                self.registration_shared_secret, nonce, localpart, password, admin
            ),
        }
        return request_json(self.client_url, "POST", path, body)[1]

    def client_for(
        self, localpart: str, password: str | None = None, admin: bool = False
    ) -> CSClient:
        """Register ``localpart`` and return a :class:`CSClient` logged in as it; blocking."""
        registered = self.register_user(localpart, password or secrets.token_hex(8), admin)
        return CSClient(
            self.client_url,
            access_token=registered["access_token"],
            user_id=registered["user_id"],
            device_id=registered.get("device_id"),
        )

    # --- Deferred variants for trial tests -------------------------------------------

    def start_deferred(self, reactor):
        """:meth:`start` in the reactor's thread pool; returns a Deferred firing with ``None``."""
        return deferToThreadPool(reactor, reactor.getThreadPool(), self.start)

    def stop_deferred(self, reactor):
        """:meth:`stop` in the reactor's thread pool; returns a Deferred firing with the exit status."""
        return deferToThreadPool(reactor, reactor.getThreadPool(), self.stop)

    def register_user_deferred(self, reactor, localpart: str, password: str, admin: bool = False):
        """:meth:`register_user` in the reactor's thread pool; returns a Deferred firing with its dict."""
        return deferToThreadPool(
            reactor, reactor.getThreadPool(), self.register_user, localpart, password, admin
        )


def _logging_config(log_path: str) -> dict:
    """A Python ``logging.config.dictConfig`` writing WARNING and above to ``log_path``."""
    return {
        "version": 1,
        "formatters": {
            "precise": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}
        },
        "handlers": {
            "file": {"class": "logging.FileHandler", "formatter": "precise", "filename": log_path},
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


class SynapseProcess(HomeserverProcess):
    """A Synapse homeserver on loopback, run by a separate Python interpreter.

    :param workdir: see :class:`HomeserverProcess`.
    :param python: the interpreter with ``matrix-synapse`` installed; ``MXREF_SYNAPSE_PYTHON``
        by default.
    :param server_name: see :class:`HomeserverProcess`.
    :param database: see :class:`HomeserverProcess`; PostgreSQL needs ``psycopg2`` in
        Synapse's venv and a database with ``C`` collation.
    :param config_overrides: see :class:`HomeserverProcess`.
    """

    kind = "Synapse"

    def __init__(
        self,
        workdir: str,
        python: str | None = None,
        server_name: str | None = None,
        database: dict | None = None,
        config_overrides: dict | None = None,
        start_timeout: float = 60.0,
    ):
        super().__init__(workdir, server_name, database, config_overrides, start_timeout)
        python = python or os.environ.get("MXREF_SYNAPSE_PYTHON")
        if not python:
            raise ValueError("no Synapse interpreter: pass python= or set MXREF_SYNAPSE_PYTHON")
        # The server runs in workdir, so a relative path must be made absolute here.
        self.python = os.path.abspath(python) if os.sep in python else python

    def write_config(self) -> None:
        """Write ``homeserver.yaml`` and the WARNING-level log config for Synapse."""
        log_config_path = os.path.join(self.workdir, "log.config")
        with open(log_config_path, "w") as f:
            yaml.safe_dump(_logging_config(self.log_path), f, sort_keys=False)
        config = self.common_config()
        config.update(
            {
                "pid_file": os.path.join(self.workdir, "homeserver.pid"),
                "log_config": log_config_path,
                "media_store_path": os.path.join(self.workdir, "media_store"),
                "macaroon_secret_key": secrets.token_hex(16),
                "form_secret": secrets.token_hex(16),
                "enable_metrics": False,
                "url_preview_enabled": False,
            }
        )
        self._write_yaml(config)

    def command(self) -> list:
        """``<python> -m synapse.app.homeserver -c homeserver.yaml``."""
        return [self.python, "-m", "synapse.app.homeserver", "-c", self.config_path]


def _source_root() -> str:
    """The directory holding the ``mxref`` package and the ``twisted/plugins`` drop-in."""
    import mxref

    return os.path.dirname(os.path.dirname(os.path.abspath(mxref.__file__)))


def warning_log_observer():
    """A twistd ``--logger`` factory: Twisted log events of level warn and above, as text on
    stdout (which the harness captures). Keeps per-request access logs out of the way, like
    the WARNING-level file log Synapse gets."""
    return FilteringLogObserver(
        textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(LogLevel.warn)]
    )


class MxrefProcess(HomeserverProcess):
    """An mxref homeserver on loopback, run as ``twistd -n mxref --config homeserver.yaml``.

    The config is written in Synapse's format (see :mod:`mxref.config`) with the
    database and media store in ``<workdir>/data``; the server name is the config's
    ``server_name`` (``twistd mxref`` refuses ``--server-name`` together with ``--config``).

    :param workdir: see :class:`HomeserverProcess`.
    :param server_name: see :class:`HomeserverProcess`.
    :param database: see :class:`HomeserverProcess`.
    :param config_overrides: see :class:`HomeserverProcess`.
    :param python: the interpreter; this one by default.
    """

    kind = "mxref"

    def __init__(
        self,
        workdir: str,
        server_name: str | None = None,
        database: dict | None = None,
        config_overrides: dict | None = None,
        start_timeout: float = 60.0,
        python: str | None = None,
    ):
        super().__init__(workdir, server_name, database, config_overrides, start_timeout)
        self.python = python or sys.executable
        self.data_dir = os.path.join(self.workdir, "data")

    def common_config(self) -> dict:
        """Synapse-format keys with the SQLite database inside the data directory."""
        config = super().common_config()
        if self.database is None:
            config["database"] = {
                "name": "sqlite3",
                "args": {"database": os.path.join(self.data_dir, "homeserver.db")},
            }
        return config

    def write_config(self) -> None:
        """Write ``homeserver.yaml`` and its WARNING-level log config; create the data directory."""
        os.makedirs(self.data_dir, exist_ok=True)
        log_config_path = os.path.join(self.workdir, "log.config")
        with open(log_config_path, "w") as f:
            yaml.safe_dump(_logging_config(self.log_path), f, sort_keys=False)
        config = self.common_config()
        config.update(
            {
                "log_config": log_config_path,
                "media_store_path": os.path.join(self.data_dir, "media_store"),
            }
        )
        self._write_yaml(config)

    def command(self) -> list:
        """``twistd -n --pidfile= --logger=<warnings only> mxref --config <workdir>/homeserver.yaml``
        (twistd's module has no ``__main__``, so it is started through ``-c``)."""
        return [
            self.python,
            "-c",
            "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "--logger=mxref.testing.processes.warning_log_observer",
            "mxref",
            "--config",
            self.config_path,
        ]

    def environment(self) -> dict:
        """This environment with the source root first on ``PYTHONPATH``, so that twistd finds
        the ``twisted/plugins/mxref_plugin.py`` drop-in whatever the working directory."""
        env = dict(os.environ)
        root = _source_root()
        env["PYTHONPATH"] = os.pathsep.join(
            [root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        return env


def _find_postgres_bindir() -> str | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (Debian's layout first), or ``None``."""
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        for version in sorted(
            os.listdir(base),
            key=lambda v: [int(p) for p in v.split(".") if p.isdigit()],
            reverse=True,
        ):
            candidate = os.path.join(base, version, "bin")
            if os.access(os.path.join(candidate, "initdb"), os.X_OK):
                return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class ThrowawayPostgres:
    """A private PostgreSQL cluster on 127.0.0.1 with a free port, ``fsync=off``, trust auth.

    Made the way ``.ci/postgres.sh`` makes it: ``initdb`` and ``pg_ctl`` run as the
    ``postgres`` OS user when we are root (they refuse to run as root).

    :param bindir: the directory with ``initdb``/``pg_ctl``; found automatically by default.
    """

    def __init__(self, bindir: str | None = None):
        self.bindir = bindir or _find_postgres_bindir()
        if self.bindir is None:
            raise FileNotFoundError(
                "PostgreSQL's initdb was not found (install the postgresql package)"
            )
        self.directory = None
        self.port = None
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> None:
        """Create and start the cluster; blocking."""
        self.directory = tempfile.mkdtemp(prefix="mxref-pg.")
        self.port = free_port()
        if self._as_postgres:
            shutil.chown(self.directory, user="postgres")
        data = os.path.join(self.directory, "data")
        subprocess.run(
            self._as_postgres
            + [
                os.path.join(self.bindir, "initdb"),
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            self._as_postgres
            + [
                os.path.join(self.bindir, "pg_ctl"),
                "-D",
                data,
                "-l",
                os.path.join(self.directory, "log"),
                "-w",
                "-o",
                options,
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def create_database(self, name: str) -> dict:
        """Create database ``name`` (``C`` collation, UTF-8) and return the Synapse-format
        ``database`` mapping for it; blocking."""
        subprocess.run(
            self._as_postgres
            + [
                os.path.join(self.bindir, "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return {
            "name": "psycopg2",
            "args": {
                "user": "postgres",
                "dbname": name,
                "host": "127.0.0.1",
                "port": self.port,
                "cp_min": 5,
                "cp_max": 10,
            },
        }

    def stop(self) -> None:
        """Stop the cluster immediately and delete its files; blocking."""
        if self.directory is None:
            return
        subprocess.run(
            self._as_postgres
            + [
                os.path.join(self.bindir, "pg_ctl"),
                "-D",
                os.path.join(self.directory, "data"),
                "-m",
                "immediate",
                "stop",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None
