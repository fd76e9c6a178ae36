"""Our TLS certificate: generating a self-signed one on first run and loading the configured one.

Server-Server API, "TLS" (https://spec.matrix.org/v1.19/server-server-api/#tls):
federation runs over HTTPS and a server's certificate must be valid for its
server name. Other servers refuse self-signed certificates, so the one mxref
generates is for a first run, local testing and tests; an operator replaces
it (``tls_certificate_path``/``tls_private_key_path``) with one from a
certificate authority, or terminates TLS in a reverse proxy.

The certificate file may hold the server certificate followed by its
intermediate certificates (a "full chain"), as certificate authorities issue them.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger

from mxref.config.reader import ConfigError
from mxref.config.server import split_server_name

log = Logger()


def generate_self_signed_certificate(
    server_name: str, now: datetime.datetime | None = None, valid_days: int = 3650
):
    """Make a self-signed certificate for the host part of ``server_name``.

    The certificate names the host both as its subject common name and as a
    subject alternative name (a DNS name, or an IP address for IP literals).
    The key is an ECDSA P-256 key.

    :param server_name: the Matrix server name; any port is ignored.
    :param now: the start of the validity period (default: the current UTC time).
    :param valid_days: how long the certificate is valid.
    :returns: ``(certificate_pem, private_key_pem)``, both ``bytes``.
    """
    host, _port = split_server_name(server_name)
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alternative_name = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alternative_name = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName([alternative_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate_pem, key_pem


def write_self_signed_certificate(
    server_name: str, certificate_path: str, private_key_path: str
) -> None:
    """Generate a self-signed certificate for ``server_name`` and write both PEM files.

    The key file is readable by the owner only. Neither file may exist yet.
    """
    certificate_pem, key_pem = generate_self_signed_certificate(server_name)
    fd = os.open(private_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    fd = os.open(certificate_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(certificate_pem)


def ensure_certificate(server_name: str, certificate_path: str, private_key_path: str) -> bool:
    """Create a self-signed certificate if neither file exists; otherwise leave the files alone.

    Generating only when *both* files are missing means a mistyped path to a
    real certificate is reported by :func:`load_certificate_options` instead of
    being silently replaced by a self-signed one.

    :returns: whether a certificate was generated.
    """
    if os.path.exists(certificate_path) or os.path.exists(private_key_path):
        return False
    write_self_signed_certificate(server_name, certificate_path, private_key_path)
    log.info(
        "generated a self-signed TLS certificate for {server_name} at {path}",
        server_name=server_name,
        path=certificate_path,
    )
    return True


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(key, f"cannot read {path}: {e.strerror}")


def load_certificate_chain(certificate_path: str) -> list:
    """The ``cryptography`` certificates in the PEM file, server certificate first.

    :raises ConfigError: naming ``tls_certificate_path`` if the file is unreadable or holds none.
    """
    data = _read(certificate_path, "tls_certificate_path")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ConfigError(
            "tls_certificate_path", f"{certificate_path} holds no PEM certificate ({e})"
        )
    return chain


def load_certificate_options(certificate_path: str, private_key_path: str) -> CertificateOptions:
    """Twisted TLS server options (an ``IOpenSSLContextFactory``) for our certificate.

    :param certificate_path: PEM file: the server certificate, then any intermediates.
    :param private_key_path: PEM file: the unencrypted private key of the server certificate.
    :raises ConfigError: naming the key whose file is missing, unreadable or does not match.
    """
    chain = load_certificate_chain(certificate_path)
    key_data = _read(private_key_path, "tls_private_key_path")
    try:
        private_key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            "tls_private_key_path", f"{private_key_path} holds no unencrypted PEM private key ({e})"
        )
    public_format = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if private_key.public_key().public_bytes(*public_format) != chain[0].public_key().public_bytes(
        *public_format
    ):
        raise ConfigError(
            "tls_private_key_path",
            f"{private_key_path} is not the private key of the certificate in {certificate_path}",
        )
    not_after = chain[0].not_valid_after_utc
    if not_after < datetime.datetime.now(datetime.timezone.utc):
        log.warn(
            "the TLS certificate {path} expired on {date}",
            path=certificate_path,
            date=not_after.isoformat(),
        )
    return CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(private_key),
        certificate=crypto.X509.from_cryptography(chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in chain[1:]],
    )


def server_tls_options(tls_config) -> CertificateOptions:
    """TLS server options from a :class:`mxref.config.tls.TLSConfig`.

    :raises ConfigError: if the certificate or key is missing, unreadable or mismatched.
    """
    if not tls_config.tls_certificate_path:
        raise ConfigError("tls_certificate_path", "is required to serve TLS")
    if not tls_config.tls_private_key_path:
        raise ConfigError("tls_private_key_path", "is required to serve TLS")
    return load_certificate_options(
        tls_config.tls_certificate_path, tls_config.tls_private_key_path
    )
