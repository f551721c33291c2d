"""`ops/dev/services` run for the tests: the shared pair, and pairs of their own beside it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "ops" / "dev" / "services"


def run_services(env: dict[str, str] | None, *args: str, timeout: float = 600) -> str:
    """`ops/dev/services ARGS` with `env` (None: this process's); its stdout, or RuntimeError."""
    done = subprocess.run(
        [str(SERVICES), *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ops/dev/services {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def printed_env(stdout: str) -> dict[str, str]:
    """The NAME=value lines `ops/dev/services env` printed."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


class OwnServices:
    """Start, stop and inspect the fault tests' own Kafka and PostgreSQL."""

    def __init__(self) -> None:
        self.env = {
            **os.environ,
            "SERVICES_HOME": str(ROOT / ".cache" / "faults"),
            # Below the ephemeral range (32768-60999 on Linux): a client retrying a stopped
            # broker's port from inside that range can connect to itself and take the port.
            "KAFKA_PORT": os.environ.get("FAULT_KAFKA_PORT", "19192"),
            "PG_PORT": os.environ.get("FAULT_PG_PORT", "15532"),
        }

    def run(self, *args: str) -> str:
        return run_services(self.env, *args)

    def addresses(self) -> dict[str, str]:
        return printed_env(self.run("env"))


@dataclass(frozen=True)
class SecureBroker:
    """Where the secure listener is and the credentials `ops/dev/services env` printed for it."""

    bootstrap_servers: str
    username: str
    password: str
    cafile: str
