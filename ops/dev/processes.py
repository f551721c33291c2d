"""`python -m ops.cli COMMAND` as a child process: the one runner the bench and the tests use.

The child gets the settings as its environment; its output (JSON log lines) is appended to
a file, read back by `log_lines`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from schemas.settings import Settings


class CliProcess:
    """One `store-publish COMMAND` child, started by `start` and ended by `stop` or `kill`."""

    def __init__(
        self,
        command: str,
        settings: Settings,
        log_path: Path,
        *,
        cwd: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`environ`: variables that are not settings (`OTEL_*`, say), set on top."""
        self.command = command
        self.log_path = log_path
        self._settings = settings
        self._cwd = cwd
        self._environ = dict(environ or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CliProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", self.command],
                env={**self._settings.child_environment(), **self._environ},
                cwd=self._cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def poll(self) -> int | None:
        """Its exit code once it has exited; None while it runs (or before it started)."""
        return self.process.poll() if self.process is not None else None

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for it to exit; its exit code (TimeoutExpired when it does not)."""
        assert self.process is not None, "not started"
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None, "not started"
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM while it runs, SIGKILL when it is still there after `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                self.terminate(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log_lines(self) -> list[dict[str, object]]:
        """The JSON objects it has logged so far (other output skipped)."""
        lines: list[dict[str, object]] = []
        if not self.log_path.exists():
            return lines
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines

    def logged(self, message: str) -> bool:
        return any(line.get("message") == message for line in self.log_lines())
