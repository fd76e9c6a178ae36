"""User profiles in the Client-Server API: display names and avatars."""
