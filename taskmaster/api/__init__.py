"""The OpenAI-compatible HTTP API (``/v1/``): personal tokens, limits and the wire format.

Other apps reuse the token authentication (``taskmaster.api.auth.api_view``), the
OpenAI-style errors (``taskmaster.api.errors``) and add models through
``taskmaster.api.providers.register_virtual_models``.
"""
