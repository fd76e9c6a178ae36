"""The commented ``homeserver.yaml`` written into a new data directory on first run.

The generated file is a working configuration (it is read back by
:func:`mxref.config.load_config` like any other) and a short tour of the
options an operator is most likely to change. ``docs/config.md`` documents
every option.
"""

import json
import os
import secrets

from mxref.config.server import split_server_name


def _quote(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def generate_config(
    server_name: str, data_dir: str, registration_shared_secret: str | None = None
) -> str:
    """Return the text of a new ``homeserver.yaml`` for ``server_name`` keeping its files in ``data_dir``.

    The client API listens on ``http://127.0.0.1:8008``; federation listens with
    TLS on port 8448 (only on loopback when the server is called ``localhost``,
    since no other server could reach it anyway). Paths are written absolute.

    :param server_name: the Matrix server name (``localhost``, ``example.org``, ``example.org:8448``).
    :param data_dir: the data directory; made absolute.
    :param registration_shared_secret: the secret for ``mxref-register``; a new random one if ``None``.
    :raises ValueError: if ``server_name`` is not a valid server name.
    """
    host, _port = split_server_name(server_name)
    data_dir = os.path.abspath(data_dir)
    if registration_shared_secret is None:
        registration_shared_secret = secrets.token_urlsafe(32)
    if host in ("localhost", "127.0.0.1", "::1"):
        federation_binds = "['127.0.0.1']"
    else:
        federation_binds = "['::', '0.0.0.0']"

    def path(name: str) -> str:
        return _quote(os.path.join(data_dir, name))

    return f"""\
# mxref configuration, generated on first run.
#
# Key names follow Synapse's homeserver.yaml, so most of a Synapse
# configuration carries over. Every option is described in docs/config.md.
# Relative paths are resolved against the directory holding this file.

# The name of this server: the part after the colon in user IDs
# (@alice:{server_name}). It cannot be changed once users exist.
server_name: {_quote(server_name)}

# Where clients reach this server. Put your reverse proxy's URL here.
public_baseurl: "http://127.0.0.1:8008/"

# Serve /.well-known/matrix/server, delegating federation to port 443 of
# public_baseurl's host (for servers behind a reverse proxy on 443).
serve_server_wellknown: false

# The HTTP listeners. Each may serve any resources (client, federation,
# keys, ...) with or without TLS.
listeners:
  # The Client-Server API, plain HTTP on loopback. Put a TLS reverse proxy
  # in front of it (or set tls: true) to serve clients on other machines.
  - port: 8008
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false

  # The Server-Server (federation) API, over TLS with the certificate below.
  # Other servers only accept a certificate signed by a trusted authority:
  # replace the generated self-signed one before federating.
  - port: 8448
    bind_addresses: {federation_binds}
    type: http
    tls: true
    resources:
      - names: [federation]
        compress: false

# The database. SQLite needs no setup; for production use PostgreSQL:
#   database:
#     name: psycopg2
#     args: {{user: mxref, password: secret, dbname: mxref, host: localhost, cp_min: 5, cp_max: 10}}
database:
  name: sqlite3
  args:
    database: {path("homeserver.db")}

# This server's ed25519 signing key (created when missing). Keep it secret
# and keep it safe: other servers remember it.
signing_key_path: {path(f"{server_name}.signing.key")}

# The TLS certificate (with any intermediates after it) and its key.
tls_certificate_path: {path(f"{server_name}.tls.crt")}
tls_private_key_path: {path(f"{server_name}.tls.key")}

# Uploaded files.
media_store_path: {path("media_store")}
max_upload_size: "50M"

# Registration. Users can always be created by the administrator with
#   mxref-register -c <this file> http://127.0.0.1:8008
# which authenticates with this secret.
enable_registration: false
registration_shared_secret: {_quote(registration_shared_secret)}

# Check other servers' TLS certificates. Only turn this off in tests.
federation_verify_certificates: true

# Servers to fetch other servers' signing keys through when they cannot be
# fetched directly. Synapse's default is matrix.org; mxref's is none:
#   trusted_key_servers:
#     - server_name: "matrix.org"
trusted_key_servers: []

# Rate limits (Synapse's defaults).
rc_message:
  per_second: 0.2
  burst_count: 10
rc_registration:
  per_second: 0.17
  burst_count: 3
rc_login:
  address: {{per_second: 0.003, burst_count: 5}}
  account: {{per_second: 0.003, burst_count: 5}}
  failed_attempts: {{per_second: 0.17, burst_count: 3}}

# Third-party modules:
#   modules:
#     - module: my_package.MyModule
#       config: {{}}
modules: []
"""
