"""The room endpoints of the Client-Server API: creating rooms, membership, sending and reading events."""
