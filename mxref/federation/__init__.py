"""The Server-Server (federation) API: transport (inbound resources and outbound client),
the outbound sender and the inbound receiver.

Spec: https://spec.matrix.org/v1.19/server-server-api/
"""
