"""``mxref-register``: create a user on a running server with the registration shared secret.

It speaks Synapse's shared-secret registration API (see
:mod:`mxref.auth.shared_secret`), so it works against mxref and Synapse alike,
and takes the same options as Synapse's ``register_new_matrix_user``::

    mxref-register -c mxref-data/homeserver.yaml -u alice -p secret --admin http://127.0.0.1:8008

The secret comes from ``-k`` or from ``registration_shared_secret`` (or
``registration_shared_secret_path``) in the ``-c`` file. Without a URL, the
first listener serving ``client`` in the ``-c`` file is used, else
``http://127.0.0.1:8008``. Missing user name, password or admin choice are
asked for on the terminal.

This is a command-line program: it blocks on plain ``urllib`` requests and
never runs a reactor.
"""

import argparse
import getpass
import json
import os
import sys
import urllib.error
import urllib.request

import yaml

from mxref.auth.shared_secret import compute_registration_mac

DEFAULT_SERVER_URL = "http://127.0.0.1:8008"
REGISTER_PATH = "/_synapse/admin/v1/register"


class RegistrationFailed(Exception):
    """The server refused the registration (or could not be reached); the message says why."""


def _request_json(urlopen, url: str, body=None) -> dict:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urlopen(request) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read().decode("utf-8"))
            message = f"{error.get('errcode', 'error')}: {error.get('error', '')}"
        except ValueError:
            message = e.reason
        raise RegistrationFailed(f"{url} answered {e.code} {message}")
    except urllib.error.URLError as e:
        raise RegistrationFailed(f"cannot reach {url}: {e.reason}")
    except ValueError:
        raise RegistrationFailed(f"{url} did not answer JSON")


def register_user(
    server_url: str,
    shared_secret: str,
    user: str,
    password: str,
    admin: bool,
    user_type: str | None = None,
    urlopen=urllib.request.urlopen,
) -> dict:
    """Register ``user`` through the shared-secret API: fetch a nonce, then post the signed request.

    Blocks (this is for command-line use, not for code running in a reactor).

    :param server_url: the server's base URL, e.g. ``http://127.0.0.1:8008``.
    :param shared_secret: the server's ``registration_shared_secret``.
    :param user: the localpart of the new user.
    :param password: the new user's password.
    :param admin: make the user a server admin.
    :param user_type: Synapse's optional user type, or ``None``.
    :param urlopen: the function that performs requests (``urllib.request.urlopen``).
    :returns: the server's response, e.g. ``{"user_id": ..., "access_token": ..., "device_id": ...}``.
    :raises RegistrationFailed: with the server's error.
    """
    url = server_url.rstrip("/") + REGISTER_PATH
    nonce = _request_json(urlopen, url).get("nonce")
    if not isinstance(nonce, str):
        raise RegistrationFailed(f"{url} did not hand out a nonce")
    body = {
        "nonce": nonce,
        "username": user,
        "password": password,
        "admin": admin,
        "mac": compute_registration_mac(shared_secret, nonce, user, password, admin, user_type),
    }
    if user_type is not None:
        body["user_type"] = user_type
    return _request_json(urlopen, url, body)


def _read_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise RegistrationFailed(f"cannot read {path}: {e}")
    if not isinstance(data, dict):
        raise RegistrationFailed(f"{path} is not a homeserver configuration")
    return data


def secret_from_config(path: str) -> str:
    """The registration shared secret named by the config file at ``path``.

    :raises RegistrationFailed: if the file sets neither ``registration_shared_secret`` nor
        ``registration_shared_secret_path``.
    """
    data = _read_config(path)
    secret = data.get("registration_shared_secret")
    if isinstance(secret, str) and secret:
        return secret
    secret_path = data.get("registration_shared_secret_path")
    if isinstance(secret_path, str):
        secret_path = os.path.join(
            os.path.dirname(os.path.abspath(path)), os.path.expanduser(secret_path)
        )
        try:
            with open(secret_path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as e:
            raise RegistrationFailed(f"cannot read {secret_path}: {e.strerror}")
    raise RegistrationFailed(
        f"{path} sets no registration_shared_secret: shared-secret registration is disabled on that server"
    )


def client_url_from_config(path: str):
    """The URL of the first listener in the config file at ``path`` serving ``client``, or ``None``."""
    data = _read_config(path)
    for listener in data.get("listeners") or ():
        if not isinstance(listener, dict) or not isinstance(listener.get("port"), int):
            continue
        names = [
            name
            for group in listener.get("resources") or ()
            if isinstance(group, dict)
            for name in group.get("names") or ()
        ]
        if "client" not in names:
            continue
        addresses = listener.get("bind_addresses") or [listener.get("bind_address") or "::"]
        host = addresses[0] if addresses[0] not in ("0.0.0.0", "::") else "localhost"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if listener.get("tls") else "http"
        return f"{scheme}://{host}:{listener['port']}"
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mxref-register",
        description="Create a user on a Matrix homeserver (mxref or Synapse) with its registration shared secret.",
    )
    parser.add_argument("-u", "--user", help="the localpart of the new user")
    parser.add_argument("-p", "--password", help="the new user's password (asked for when absent)")
    parser.add_argument("-t", "--user_type", default=None, help="an optional user type, e.g. 'bot'")
    admin = parser.add_mutually_exclusive_group()
    admin.add_argument(
        "-a", "--admin", action="store_true", default=None, help="make the user a server admin"
    )
    admin.add_argument("--no-admin", dest="admin", action="store_false", help="make a normal user")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument(
        "-c", "--config", help="the homeserver.yaml holding registration_shared_secret"
    )
    secret.add_argument("-k", "--shared-secret", help="the registration shared secret itself")
    parser.add_argument(
        "server_url",
        nargs="?",
        default=None,
        help=f"the server's client API URL (default: from -c, else {DEFAULT_SERVER_URL})",
    )
    return parser


def main(argv=None, stdin=None, stdout=None, stderr=None, urlopen=urllib.request.urlopen) -> int:
    """Run ``mxref-register``; returns the exit status (0 on success)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = _parser().parse_args(argv)
    try:
        if args.config:
            shared_secret = secret_from_config(args.config)
            server_url = (
                args.server_url or client_url_from_config(args.config) or DEFAULT_SERVER_URL
            )
        else:
            shared_secret = args.shared_secret
            server_url = args.server_url or DEFAULT_SERVER_URL

        user = args.user
        password = args.password
        admin = args.admin
        interactive = stdin.isatty()
        if user is None:
            if not interactive:
                raise RegistrationFailed("no user name given (-u)")
            stdout.write("New user localpart: ")
            stdout.flush()
            user = stdin.readline().strip()
            if not user:
                raise RegistrationFailed("no user name given")
        if password is None:
            if not interactive:
                raise RegistrationFailed("no password given (-p)")
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Confirm password: "):
                raise RegistrationFailed("the passwords do not match")
            if not password:
                raise RegistrationFailed("the password is empty")
        if admin is None:
            admin = False
            if interactive:
                stdout.write("Make admin [no]: ")
                stdout.flush()
                admin = stdin.readline().strip().lower() in ("y", "yes", "true")

        result = register_user(
            server_url, shared_secret, user, password, admin, args.user_type, urlopen
        )
    except RegistrationFailed as e:
        stderr.write(f"mxref-register: {e}\n")
        return 1
    stdout.write(f"Registered {result.get('user_id', user)}{' (admin)' if admin else ''}.\n")
    return 0
