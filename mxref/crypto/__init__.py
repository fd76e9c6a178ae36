"""Keys and certificates: this server's signing key (``keys``) and its TLS certificate (``tls``)."""
