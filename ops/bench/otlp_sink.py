"""An OTLP/HTTP receiver on loopback that accepts every export and drops it: what the
bench's traced phase exports to (`--tracing`). The processes it measures run the SDK and
its OTLP/HTTP exporter as a deployment does (spans built, batched, encoded as protobuf and
POSTed), chosen by the standard variables; only the collector is missing, and nothing
leaves the machine. It runs as a process of its own, so its CPU is not the load
generator's; it counts the exports and bytes it received (`GET /received`), the proof that
the phase was traced.

    python -m ops.bench.otlp_sink PORT
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from ops.bench.probes import wait_until
from ops.dev.services_tool.system import port_open

TRACES_PATH = "/v1/traces"
RECEIVED_PATH = "/received"


def app() -> web.Application:
    received = {"exports": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        received["exports"] += 1
        received["bytes"] += len(body)
        # An empty ExportTraceServiceResponse: every span accepted.
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def counts(_request: web.Request) -> web.Response:
        return web.json_response(received)

    # The exporter's batches of 512 spans are about 100 kB; aiohttp's default cap is 1 MiB.
    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.router.add_post(TRACES_PATH, traces)
    application.router.add_get(RECEIVED_PATH, counts)
    return application


@dataclass(frozen=True)
class Sink:
    port: int

    def environment(self) -> dict[str, str]:
        """The standard variables that send a process's spans here over OTLP/HTTP."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{self.port}{TRACES_PATH}",
        }

    async def received(self) -> dict[str, int]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}{RECEIVED_PATH}") as got,
        ):
            counted: dict[str, int] = await got.json()
            return counted


@asynccontextmanager
async def running_sink(port: int, log_path: Path) -> AsyncIterator[Sink]:
    """The sink in a child process on `port` until the block ends."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ops.bench.otlp_sink",
            str(port),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=os.environ.copy(),
        )
    try:

        def listening() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the OTLP sink stopped; its log: {log_path}")
            return port_open(port)

        await wait_until(listening, 30, f"the OTLP sink (its log: {log_path})")
        yield Sink(port)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)
