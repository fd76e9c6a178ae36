"""Presence: who is online, over the Client-Server API, ``/sync`` and federation EDUs."""
