"""Client-Server API filters: checking and storing filter definitions, and applying them to events."""
