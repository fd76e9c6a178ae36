"""Interoperability and end-to-end tests against real homeserver processes (Synapse, mxref)."""
