"""What a client asks before it logs in: ``/versions``, ``/.well-known/matrix/client`` and ``/capabilities``.

Spec: Client-Server API, "API Versions", "Server Discovery" and
"Capabilities negotiation".
"""
