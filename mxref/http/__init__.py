"""HTTP plumbing shared by every API: the Site, the JSON route table and request parsing.

Resources built on :class:`mxref.http.resource.JsonResource` parse a request
(:mod:`mxref.http.request`), authenticate it (:mod:`mxref.auth.tokens`), call
one service method and serialise its answer.
"""
