"""The one I/O seam of the InfluxDB sink: an HTTP request with a timeout.

Everything else (batching, retries, spill, queries) goes through ``Transport``, so
unit tests swap in a scripted fake and integration tests use the real server with
the same code path. The default transport is the standard library's urllib: no
extra dependency, and a write is one short POST where connection reuse buys little.
Environment proxies are ignored on purpose: InfluxDB sits next to the pipeline, and
an ``http_proxy`` meant for the internet must not capture loopback or LAN writes.
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sinks.influx.settings import InfluxSettings


class TransportError(OSError):
    """The request did not get an HTTP answer (refused, reset, timed out, garbled).

    ``timed_out`` tells a slow server from a dead one: the writer does not retry a
    timeout at once, since a second full timeout would only stall the stream longer.
    """

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Transport(Protocol):
    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> HttpResponse:
        """Send one request; raise ``TransportError`` when no HTTP answer came back."""
        ...


class UrllibTransport:
    """``Transport`` over urllib, without environment proxies."""

    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> HttpResponse:
        req = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
        try:
            with self._opener.open(req, timeout=timeout_s) as resp:
                return HttpResponse(resp.status, resp.read())
        except urllib.error.HTTPError as exc:  # an HTTP answer, just not 2xx
            with exc:
                return HttpResponse(exc.code, exc.read())
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
            raise TransportError(
                f"{method} {url.split('?')[0]}: {reason}", timed_out=timed_out
            ) from exc


def auth_headers(settings: InfluxSettings) -> dict[str, str]:
    """The Authorization header for a token (2.x/3.x) or a user and password (1.x)."""
    if settings.token:
        return {"Authorization": f"Token {settings.token}"}
    if settings.username:
        pair = f"{settings.username}:{settings.password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}
