"""Receiving from other servers: transactions (dedup, limits), the per-room PDU pipeline,
EDUs, and the services behind the inbound Server-Server API endpoints."""
