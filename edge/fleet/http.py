"""The bundle over HTTP: the controller serves the archive while it rolls it out (`trainer fleet deploy --http`),
and a device fetches the chunks it misses with Range requests, each checked against the signed manifest like an
MQTT chunk. Any HTTP problem (the controller's laptop left, a proxy in the way) only means the rest comes over
MQTT, where the same chunks are retained."""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from edge.fleet.chunks import PackedBundle
from edge.fleet.protocol import ReleaseManifest

if TYPE_CHECKING:
    from edge.core.webserver import BackgroundServer

FETCH_TIMEOUT_S = 15.0
SPAN_CHUNKS = 16  # chunks per request: 768 KiB, few round trips, little memory on a Pi


class HttpFetchError(OSError):
    """A chunk that could not be had over HTTP; the text says why."""


def fetch_chunks(manifest: ReleaseManifest, first: int, count: int, timeout_s: float = FETCH_TIMEOUT_S) -> list[bytes]:
    """Chunks first .. first+count-1 of the archive at manifest.http_url, in one Range request (at most what they
    hold is read), cut into chunks for the caller to check one by one."""
    if manifest.http_url is None:
        raise HttpFetchError("the manifest names no HTTP address")
    start = first * manifest.chunk_size
    length = min(count * manifest.chunk_size, manifest.size - start)
    request = urllib.request.Request(manifest.http_url, headers={"Range": f"bytes={start}-{start + length - 1}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (http(s) only: the manifest's pattern)
            if response.status != 206:
                raise HttpFetchError(f"{manifest.http_url} answered {response.status} to a range request")
            data = response.read(length + 1)
    except urllib.error.URLError as exc:
        raise HttpFetchError(f"{manifest.http_url}: {exc.reason}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise HttpFetchError(f"{manifest.http_url}: {exc}") from None
    if len(data) != length:
        raise HttpFetchError(f"{manifest.http_url} sent {len(data)} bytes for chunks {first}-{first + count - 1}, not {length}")
    size = manifest.chunk_size
    return [data[i * size:(i + 1) * size] for i in range(count)]


def spans(indices: list[int], most: int) -> list[tuple[int, int]]:
    """(first, count) runs of consecutive chunk numbers, each at most `most` long."""
    out: list[tuple[int, int]] = []
    for index in sorted(indices):
        if out and out[-1][0] + out[-1][1] == index and out[-1][1] < most:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((index, 1))
    return out


class BundleServer:
    """The archive at /bundles/<sha256>.tar on an uvicorn server of its own (edge.core.webserver), with ranges."""

    def __init__(self, packed: PackedBundle, host: str, port: int) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import FileResponse, PlainTextResponse, Response
        from starlette.routing import Route

        from edge.core.webserver import BackgroundServer, ServerLimits

        self._folder = tempfile.TemporaryDirectory(prefix="edgeteach-fleet-")
        self.sha256 = packed.manifest.sha256
        self.path = Path(self._folder.name) / f"{self.sha256}.tar"
        self.path.write_bytes(packed.data)
        self.requests = 0

        async def bundle(request: Request) -> Response:
            if request.path_params["name"] != f"{self.sha256}.tar":
                return PlainTextResponse("no such bundle here\n", status_code=404)
            self.requests += 1
            return FileResponse(self.path, media_type="application/x-tar")

        app = Starlette(routes=[Route("/bundles/{name}", bundle)])
        self._server: BackgroundServer = BackgroundServer(app, host, port, ServerLimits(idle_timeout_s=30, max_connections=256),
                                                          "fleet-http")

    @property
    def port(self) -> int:
        return self._server.address[1]

    def url(self, advertised_host: str) -> str:
        return f"http://{advertised_host}:{self.port}/bundles/{self.sha256}.tar"

    def start(self) -> BundleServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._folder.cleanup()
