"""The one runner of `store-publish` in the tests: the installed entry point in a child
process, as an operator runs it, so its exit code, stdout and stderr are exactly what they see.

`store_publish(settings, *args)` gives the child exactly those settings
(`Settings.child_environment`); a mapping instead is the child's whole environment. Keyword
arguments are variables set on top. From a coroutine, `await asyncio.to_thread(store_publish,
...)` keeps the event loop running while the command does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = os.path.join(os.path.dirname(sys.executable), "store-publish")


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit code, what it printed, and how long it took."""

    code: int
    out: str
    err: str
    seconds: float


def store_publish(
    settings_or_env: Settings | Mapping[str, str],
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    **env: str,
) -> Ran:
    """Run `store-publish ARGS` and wait for it (at most `timeout` seconds); `stdin` is what
    it reads (None: nothing, end of file at once)."""
    if isinstance(settings_or_env, Settings):
        environment = settings_or_env.child_environment()
    else:
        environment = dict(settings_or_env)
    environment.update(env)
    started = time.monotonic()
    done = subprocess.run(
        [ENTRY_POINT, *args],
        cwd=ROOT,
        env=environment,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
