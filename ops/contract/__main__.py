"""`python -m ops.contract write|check|gate|release`: the one way to regenerate, check and
release the contract's documents (docs/contract.md). Exits 1 with one line per problem."""

from __future__ import annotations

import argparse
import shutil
import sys

from ops.contract import gate
from ops.contract.documents import DOCUMENTS, write
from schemas.events import SCHEMA_VERSION


def _check() -> list[str]:
    return [
        f"{d.path}: stale, run python -m ops.contract write and commit it"
        for d in DOCUMENTS
        if d.stale()
    ]


def _gate() -> list[str]:
    version = gate.latest_release()
    problems = gate.refusals(
        gate.released(version),
        version,
        gate.current(),
        SCHEMA_VERSION,
        gate.CHANGELOG.read_text("utf-8"),
    )
    if not problems:
        print(f"contract gate: compatible with released v{version} (or announced as breaking)")
    return problems


def _release() -> list[str]:
    folder = gate.RELEASED_DIR / f"v{SCHEMA_VERSION}"
    if folder.exists():
        return [f"{folder} exists: a release is never rewritten; move schema_version first"]
    stale = _check()
    if stale:
        return stale
    for document in DOCUMENTS:
        target = folder / gate.relative_name(document.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(document.path, target)
    print(f"contract: released v{SCHEMA_VERSION} to {folder}; commit it")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.contract")
    parser.add_argument("action", choices=["write", "check", "gate", "release"])
    action = parser.parse_args(argv).action
    if action == "write":
        for path in write():
            print(f"contract: wrote {path}")
        return 0
    problems = {"check": _check, "gate": _gate, "release": _release}[action]()
    for problem in problems:
        print(f"contract: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
