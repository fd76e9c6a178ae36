"""Third-party modules: the interfaces they implement (:mod:`mxref.modules.interfaces`), the
narrow API they are given (:mod:`mxref.modules.api`), how their hooks are run
(:mod:`mxref.modules.hooks`) and how they are found and loaded (:mod:`mxref.modules.loader`).
``docs/modules.md`` is the guide for module authors.
"""
