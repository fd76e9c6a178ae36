"""Tests for generating and loading the TLS certificate."""

import datetime
import ipaddress
import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.trial import unittest

from mxref.config import ConfigError
from mxref.config.tls import TLSConfig
from mxref.crypto.tls import (
    ensure_certificate,
    generate_self_signed_certificate,
    load_certificate_chain,
    load_certificate_options,
    server_tls_options,
    write_self_signed_certificate,
)


def _issue(subject_name: str, issuer_name: str, issuer_key, public_key, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


class GenerateTests(unittest.TestCase):
    """The self-signed certificate names the server and is valid now."""

    def test_dns_name(self):
        """The certificate is for the host part of the server name, as common name and DNS alternative name."""
        certificate_pem, key_pem = generate_self_signed_certificate("example.org:8448")
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        self.assertEqual(
            certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "example.org"
        )
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["example.org"])
        self.assertEqual(certificate.issuer, certificate.subject)
        key = serialization.load_pem_private_key(key_pem, None)
        self.assertEqual(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def test_ip_literal(self):
        """An IP-literal server name gets an IP-address alternative name."""
        certificate_pem, _ = generate_self_signed_certificate("[::1]:8448")
        names = (
            x509.load_pem_x509_certificate(certificate_pem)
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value
        )
        self.assertEqual(names.get_values_for_type(x509.IPAddress), [ipaddress.ip_address("::1")])

    def test_validity(self):
        """The certificate is valid from (just before) now for the requested number of days."""
        now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
        certificate_pem, _ = generate_self_signed_certificate("localhost", now=now, valid_days=10)
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        self.assertLessEqual(certificate.not_valid_before_utc, now)
        self.assertEqual(certificate.not_valid_after_utc, now + datetime.timedelta(days=10))


class FilesTests(unittest.TestCase):
    """Writing, ensuring and loading the certificate files."""

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.certificate_path = os.path.join(self.directory, "tls.crt")
        self.key_path = os.path.join(self.directory, "tls.key")

    def test_ensure_generates_once(self):
        """ensure_certificate creates both files once and leaves them alone afterwards."""
        self.assertTrue(ensure_certificate("localhost", self.certificate_path, self.key_path))
        with open(self.certificate_path, "rb") as f:
            first = f.read()
        self.assertFalse(ensure_certificate("localhost", self.certificate_path, self.key_path))
        with open(self.certificate_path, "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(stat.S_IMODE(os.stat(self.key_path).st_mode), 0o600)

    def test_ensure_does_not_replace_half_configured(self):
        """If only the key file exists (a mistyped certificate path), nothing is generated and loading fails clearly."""
        with open(self.key_path, "w") as f:
            f.write("key")
        self.assertFalse(ensure_certificate("localhost", self.certificate_path, self.key_path))
        self.assertFalse(os.path.exists(self.certificate_path))
        error = self.assertRaises(
            ConfigError, load_certificate_options, self.certificate_path, self.key_path
        )
        self.assertEqual(error.key, "tls_certificate_path")

    def test_load_gives_working_context(self):
        """The loaded options build an OpenSSL context holding our certificate and key."""
        write_self_signed_certificate("localhost", self.certificate_path, self.key_path)
        options = load_certificate_options(self.certificate_path, self.key_path)
        context = options.getContext()
        self.assertIsInstance(context, SSL.Context)
        context.check_privatekey()
        expected = x509.load_pem_x509_certificate(open(self.certificate_path, "rb").read())
        self.assertEqual(options.certificate.to_cryptography(), expected)

    def test_mismatched_key(self):
        """A key that does not belong to the certificate is refused, naming tls_private_key_path."""
        write_self_signed_certificate("localhost", self.certificate_path, self.key_path)
        _, other_key = generate_self_signed_certificate("localhost")
        with open(self.key_path, "wb") as f:
            f.write(other_key)
        error = self.assertRaises(
            ConfigError, load_certificate_options, self.certificate_path, self.key_path
        )
        self.assertEqual(error.key, "tls_private_key_path")

    def test_not_a_certificate(self):
        """A certificate file without PEM certificates is refused, naming tls_certificate_path."""
        write_self_signed_certificate("localhost", self.certificate_path, self.key_path)
        with open(self.certificate_path, "w") as f:
            f.write("hello")
        error = self.assertRaises(
            ConfigError, load_certificate_options, self.certificate_path, self.key_path
        )
        self.assertEqual(error.key, "tls_certificate_path")

    def test_not_a_key(self):
        """A key file without a PEM private key is refused, naming tls_private_key_path."""
        write_self_signed_certificate("localhost", self.certificate_path, self.key_path)
        os.chmod(self.key_path, 0o600)
        with open(self.key_path, "w") as f:
            f.write("hello")
        error = self.assertRaises(
            ConfigError, load_certificate_options, self.certificate_path, self.key_path
        )
        self.assertEqual(error.key, "tls_private_key_path")

    def test_full_chain(self):
        """A certificate file with intermediates after the server certificate sends them as the chain."""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        server_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _issue(
            "Intermediate", "Root", ca_key, intermediate_key.public_key(), ca=True
        )
        leaf = _issue(
            "example.org", "Intermediate", intermediate_key, server_key.public_key(), ca=False
        )
        with open(self.certificate_path, "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM))
            f.write(intermediate.public_bytes(serialization.Encoding.PEM))
        with open(self.key_path, "wb") as f:
            f.write(
                server_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
        self.assertEqual(load_certificate_chain(self.certificate_path), [leaf, intermediate])
        options = load_certificate_options(self.certificate_path, self.key_path)
        self.assertEqual(options.certificate.to_cryptography(), leaf)
        self.assertEqual([c.to_cryptography() for c in options.extraCertChain], [intermediate])

    def test_from_config(self):
        """server_tls_options uses the configured paths and refuses a config without them."""
        write_self_signed_certificate("localhost", self.certificate_path, self.key_path)
        options = server_tls_options(
            TLSConfig(
                tls_certificate_path=self.certificate_path, tls_private_key_path=self.key_path
            )
        )
        options.getContext()
        self.assertEqual(
            self.assertRaises(ConfigError, server_tls_options, TLSConfig()).key,
            "tls_certificate_path",
        )
