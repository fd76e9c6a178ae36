"""The room directory of the Client-Server API: room aliases and the published room list."""
