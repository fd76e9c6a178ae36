"""The Client-Server API, one package per feature.

Each feature has a ``service.py`` holding its logic (it depends on storage
interfaces and the pure core, never on ``twisted.web``) and a ``resource.py``
whose classes parse a request, authenticate it, call one service method and
serialise the answer onto a :class:`mxref.http.resource.JsonResource`.

Spec: https://spec.matrix.org/v1.19/client-server-api/
"""
