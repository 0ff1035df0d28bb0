"""The admin API (``/admin/api/``): the operator's keys, teams and spend over HTTP.

``api.py`` holds the routes, ``bodies.py`` what they accept, ``answers.py`` what they answer (for
the OpenAPI document, ``document.py``). The spend dashboard itself (``/admin/``) is ``ops/dashboard.py``'s.
"""
