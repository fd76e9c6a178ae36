"""Client-Server API account data ("Client config"): per-user global and per-room key/value data."""
