"""The bench's OTLP sink (`--tracing`): a process's spans, exported by the SDK's OTLP/HTTP
exporter through the standard variables the sink gives, arrive and are counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.bench.otlp_sink import running_sink
from ops.bench.probes import free_port
from ops.runtime.tracing import tracing


async def test_spans_exported_by_the_standard_variables_reach_the_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_sink(free_port(), tmp_path / "sink.log") as sink:
        assert await sink.received() == {"exports": 0, "bytes": 0}
        for name, value in sink.environment().items():
            monkeypatch.setenv(name, value)  # the exporter reads its endpoint from os.environ
        with tracing("store-publish-test", sink.environment()) as tracer:
            assert tracer is not None
            for n in range(3):
                with tracer.start_as_current_span(f"span {n}"):
                    pass
        # Leaving `tracing` flushes the batch: one export, protobuf bytes in it.
        received = await sink.received()
        assert received["exports"] == 1
        assert received["bytes"] > 0
