"""One verifying TLS context per process, for every HTTP client it builds.

    httpx.AsyncClient(..., verify=tls.context())

An ``httpx`` client built without a context loads the CA store for itself: 30-45 ms of CPU
on a quiet machine (75-240 ms seen under load), on the caller's event loop, for every
client — even one that only ever talks http:// (the hub over the mesh). The bot's hub
client and the device agent's health check build short-lived clients; they share this.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CA bundle), built once."""
    return httpx.create_ssl_context()
