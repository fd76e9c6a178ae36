"""Client-Server API ``/sync``: the service building sync responses and its HTTP resource."""
