"""The API's bodies as marshmallow schemas.

``request`` validates a generation's or an edit's fields (the request's own step after
authentication); ``responses`` describes the answers for the OpenAPI document (``openapi.py``),
and the tests check real answers against it.
"""
