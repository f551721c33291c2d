"""The JSON Schemas kubeconform validates ops/k8s against, written offline from packages.

Kubernetes' own kinds: the schemas the `kubernetes-validate` wheel ships (generated from
Kubernetes' OpenAPI document), laid out as kubeconform looks them up, their references made
relative so that nothing is fetched. Custom resources (KEDA's ScaledObject and
TriggerAuthentication): each version's `openAPIV3Schema` of the published
CustomResourceDefinitions, converted as kubeconform's `openapi2jsonschema.py` does (objects
with properties admit no others unless they preserve unknown fields; int-or-string becomes
either).

    python -m ops.dev.k8s_schemas OUT_DIR KUBERNETES_VERSION CRD_FILE...

writes OUT_DIR/kubernetes/<kind>[-<group>]-<version>.json and
OUT_DIR/<group>/<kind>_<version>.json (kubeconform's `-schema-location` templates in the
Makefile's `manifests` target).
"""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

# In the wheel, each kind's schema points at the shared definitions by an absolute path that
# only its `$id` resolves; beside each other on disk, a relative one does.
_ABSOLUTE_DEFINITIONS = '"/api/_definitions.json#'
_RELATIVE_DEFINITIONS = '"_definitions.json#'


def write_kubernetes_schemas(out: Path, version: str) -> int:
    """Copies the strict schemas of one Kubernetes version; returns how many."""
    source = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not source.is_dir():
        raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {version}")
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for entry in source.iterdir():
        if not entry.name.endswith(".json"):
            continue
        schema = json.loads(entry.read_text().replace(_ABSOLUTE_DEFINITIONS, _RELATIVE_DEFINITIONS))
        schema.pop("$id", None)
        (out / entry.name).write_text(json.dumps(schema))
        count += 1
    return count


def crd_json_schema(node: Any) -> Any:
    """A CRD's openAPIV3Schema as kubeconform's strict JSON Schema."""
    if isinstance(node, list):
        return [crd_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: crd_json_schema(value) for key, value in node.items()}
    if converted.get("x-kubernetes-int-or-string") or converted.get("format") == "int-or-string":
        converted.pop("type", None)
        converted.pop("format", None)
        converted["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if (
        "properties" in converted
        and "additionalProperties" not in converted
        and not converted.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


def write_crd_schemas(out: Path, crd_file: Path) -> list[Path]:
    """One schema per version of each CustomResourceDefinition in the file."""
    written = []
    for crd in yaml.safe_load_all(crd_file.read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        folder = out / spec["group"]
        folder.mkdir(parents=True, exist_ok=True)
        for version in spec["versions"]:
            schema = crd_json_schema(version["schema"]["openAPIV3Schema"])
            path = folder / f"{spec['names']['kind'].lower()}_{version['name']}.json"
            path.write_text(json.dumps(schema))
            written.append(path)
    return written


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m ops.dev.k8s_schemas OUT_DIR KUBERNETES_VERSION CRD...")
    out, version, crds = Path(argv[0]), argv[1], [Path(arg) for arg in argv[2:]]
    count = write_kubernetes_schemas(out / "kubernetes", version)
    custom = [path for crd in crds for path in write_crd_schemas(out, crd)]
    print(f"k8s schemas: {count} of Kubernetes {version}, {len(custom)} custom in {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
