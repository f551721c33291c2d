"""`store-publish stream`: parse nothing, read settings, run the rates stream until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from ops.logs import configure_logging
from schemas.settings import Settings
from streams.app import run_stream


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_stream(settings, stop=stop)


def stream_command() -> None:
    """Run the rates stream: window rates, p95 latency, alerts and automatic pause."""
    settings = Settings()
    configure_logging(settings.log_level)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    stream_command()
