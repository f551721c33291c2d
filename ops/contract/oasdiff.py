"""oasdiff (github.com/oasdiff/oasdiff, built at a pinned version into .tools/bin by
ops/dev/bootstrap): the breaking changes between two OpenAPI documents, as it reports them."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OASDIFF = ROOT / ".tools" / "bin" / "oasdiff"
# Where this gate is stricter than oasdiff's defaults (docs/contract.md): a removed response
# header and a new status are errors. One check id and level a line; the file takes no comments.
SEVERITY_LEVELS = Path(__file__).with_name("oasdiff-levels.txt")


def breaking(old: Any, new: Any) -> list[dict[str, Any]]:
    """Each change from `old` to `new` oasdiff rates WARN or ERR (its JSON format: id, text,
    level, operation, path, ...). Raises when oasdiff is missing or fails."""
    if not OASDIFF.exists():
        raise FileNotFoundError(f"{OASDIFF} missing: ops/dev/bootstrap builds it (needs Go)")
    with tempfile.TemporaryDirectory(prefix="oasdiff-") as folder:
        base, revision = Path(folder) / "released.json", Path(folder) / "current.json"
        base.write_text(json.dumps(old), encoding="utf-8")
        revision.write_text(json.dumps(new), encoding="utf-8")
        ran = subprocess.run(
            [
                str(OASDIFF),
                "breaking",
                str(base),
                str(revision),
                "--format=json",
                f"--severity-levels={SEVERITY_LEVELS}",
                # The documents are ours and whole: nothing to fetch.
                "--allow-external-refs=false",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if ran.returncode != 0:
        raise RuntimeError(f"oasdiff failed ({ran.returncode}): {ran.stderr.strip()}")
    found: list[dict[str, Any]] = json.loads(ran.stdout or "[]")
    return found
