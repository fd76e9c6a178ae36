"""TLS options: our certificate for HTTPS listeners, and how we check other servers' certificates.

Server-Server API, "TLS" (https://spec.matrix.org/v1.19/server-server-api/#tls):
servers must present a certificate valid for their server name (or the
delegated name) signed by a trusted authority; self-signed certificates
are not accepted by other servers. A self-signed certificate is still
useful for a first run and for tests, and is what mxref generates.

Keys follow Synapse: ``tls_certificate_path``, ``tls_private_key_path``,
``federation_verify_certificates``, ``federation_custom_ca_list``,
``federation_certificate_verification_whitelist`` and
``federation_client_minimum_tls_version``.
"""

import os

import attrs

from mxref.config.reader import ConfigError, ConfigReader

TLS_VERSIONS = ("1", "1.1", "1.2", "1.3")


@attrs.frozen
class TLSConfig:
    """Certificate and verification settings.

    :ivar tls_certificate_path: PEM file with our certificate, then any intermediates; or ``None``.
    :ivar tls_private_key_path: PEM file with the certificate's private key; or ``None``.
    :ivar federation_verify_certificates: check other servers' certificates (turn off only in tests).
    :ivar federation_custom_ca_list: PEM files of the only authorities trusted for federation,
        replacing the system's trust store; empty means the system's.
    :ivar federation_certificate_verification_whitelist: server names (``*`` wildcards allowed)
        whose certificates are not checked.
    :ivar federation_client_minimum_tls_version: the lowest TLS version we speak to other servers.
    """

    tls_certificate_path: str | None = None
    tls_private_key_path: str | None = None
    federation_verify_certificates: bool = True
    federation_custom_ca_list: tuple = ()
    federation_certificate_verification_whitelist: tuple = ()
    federation_client_minimum_tls_version: str = "1"

    @classmethod
    def read(cls, reader: ConfigReader) -> "TLSConfig":
        """Read the top-level TLS keys."""
        ca_list = reader.string_list("federation_custom_ca_list", ())
        resolved = []
        for index, path in enumerate(ca_list):
            path = reader.resolve_path(path)
            if not os.path.isfile(path):
                raise ConfigError(f"federation_custom_ca_list[{index}]", f"no such file: {path}")
            resolved.append(path)

        minimum = str(reader.raw("federation_client_minimum_tls_version", "1"))
        if minimum not in TLS_VERSIONS:
            raise ConfigError(
                "federation_client_minimum_tls_version",
                f"must be one of {', '.join(TLS_VERSIONS)}, not {minimum!r}",
            )
        return cls(
            tls_certificate_path=reader.path("tls_certificate_path", None),
            tls_private_key_path=reader.path("tls_private_key_path", None),
            federation_verify_certificates=reader.boolean("federation_verify_certificates", True),
            federation_custom_ca_list=tuple(resolved),
            federation_certificate_verification_whitelist=reader.string_list(
                "federation_certificate_verification_whitelist", ()
            ),
            federation_client_minimum_tls_version=minimum,
        )
