"""A CRD's openAPIV3Schema becomes the strict JSON Schema kubeconform validates with."""

from __future__ import annotations

from ops.dev.k8s_schemas import crd_json_schema


def test_an_object_with_properties_admits_no_others() -> None:
    schema = crd_json_schema({"type": "object", "properties": {"spec": {"type": "object"}}})
    assert schema["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["spec"]


def test_an_object_that_preserves_unknown_fields_or_maps_any_keys_stays_open() -> None:
    preserved = {"x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}}
    assert "additionalProperties" not in crd_json_schema(preserved)
    mapping = {"properties": {"a": {}}, "additionalProperties": {"type": "string"}}
    assert crd_json_schema(mapping)["additionalProperties"] == {"type": "string"}


def test_int_or_string_accepts_either_at_any_depth() -> None:
    schema = crd_json_schema(
        {"type": "array", "items": {"x-kubernetes-int-or-string": True, "type": "string"}}
    )
    assert schema["items"]["oneOf"] == [{"type": "string"}, {"type": "integer"}]
    assert "type" not in schema["items"]
