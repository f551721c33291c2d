"""py-spy attached to the benchmark's child processes, and a summary of what it sampled.

`py-spy record --format raw` writes collapsed stacks (`frame;frame;… count`); the summary
ranks functions by self samples (the innermost frame) and by total samples (anywhere on the
stack, once per stack), line numbers dropped so a function counts as one entry.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.bench.probes import Child

_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recording:
    """`py-spy record` on one process until `stop`."""

    def __init__(self, executable: str, pid: int, output: Path, rate: int = 100) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [
                executable,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                str(rate),
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass(frozen=True)
class ProfileSummary:
    samples: int
    by_self: list[tuple[str, int]]
    by_total: list[tuple[str, int]]

    def lines(self, title: str, top: int = 15) -> list[str]:
        if not self.samples:
            return [f"profile {title}: no samples"]
        out = [f"profile {title}: {self.samples:,} samples; top by self time"]
        out += [f"  {n / self.samples:6.1%}  {name}" for name, n in self.by_self[:top]]
        out.append(f"profile {title}: top by total time (on the stack)")
        # The entry point, the CLI and the event loop's own frames are on nearly every
        # stack: left out, the entries below them are the ones that say where time goes.
        telling = [(name, n) for name, n in self.by_total if not _is_scaffolding(name)]
        out += [f"  {n / self.samples:6.1%}  {name}" for name, n in telling[:top]]
        return out


_SCAFFOLDING = (
    "<frozen runpy>",
    "typer/",
    "click/",
    "asyncio/runners.py",
    "run_forever (asyncio/base_events.py)",
    "run_until_complete (asyncio/base_events.py)",
    "_run_once (asyncio/base_events.py)",
    "ops/cli/",
    "(store-publish)",
)


def _is_scaffolding(frame: str) -> bool:
    return any(marker in frame for marker in _SCAFFOLDING)


def _frame(raw: str) -> str:
    return _LINE.sub(")", raw.strip())


def summarize(path: Path) -> ProfileSummary:
    """Rank the functions in a `--format raw` file."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return ProfileSummary(samples, own.most_common(), total.most_common())


def start_profiles(folder: Path | None, children: Sequence[Child]) -> list[Recording]:
    """A py-spy recording of each child into `folder` (`--profile`); none without one."""
    executable = py_spy()
    if folder is None:
        return []
    if executable is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    return [Recording(executable, c.pid, folder / f"{c.name}.txt") for c in children]


def say_profiles(say: Callable[[str], None], recordings: Sequence[Recording]) -> None:
    for recording in recordings:
        for line in summarize(recording.output).lines(recording.output.stem):
            say(line)
