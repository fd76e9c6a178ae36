"""Room services shared by the Client-Server and Federation APIs: computing state, creating,
authorising and persisting events, room creation and membership changes.

These services hold the Matrix logic between the pure core (:mod:`mxref.events`) and storage
(:mod:`mxref.storage.interfaces`). They never import ``twisted.web``.
"""
