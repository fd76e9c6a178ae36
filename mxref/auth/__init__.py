"""Who is making a request: access tokens (:mod:`mxref.auth.tokens`) and password hashing (:mod:`mxref.auth.passwords`)."""
