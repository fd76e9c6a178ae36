"""Test and benchmark support: real homeserver processes on loopback, a small blocking
Client-Server API client, and a driver for the matrix-nio client library."""
