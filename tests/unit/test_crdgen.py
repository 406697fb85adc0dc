"""CRDs generated from the models: structural, complete, and in step with crds/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from duet_operator import crdgen
from duet_operator.models import DataPlatformSpec

REPO = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += walk(value, f"{path}[{i}]")
    return found


@pytest.fixture(params=crdgen.KINDS, ids=lambda k: k.kind)
def schema(request: pytest.FixtureRequest) -> dict[str, Any]:
    crd = crdgen.build_crd(request.param)
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert node.get("type") != "null", path
        if "anyOf" in node:
            # The only union the API server accepts: int-or-string, in exactly this shape.
            assert node["x-kubernetes-int-or-string"] is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True, path


def test_defaults_carry_no_nulls(schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        if "default" in node:
            assert None not in [v for _, v in walk_values(node["default"])], path


def walk_values(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in walk_values(v, f"{path}.{k}")]
    return [(path, value)]


def test_dataplatform_schema_has_defaults_cel_rules_and_field_docs() -> None:
    crd = crdgen.build_crd(crdgen.KINDS[0])
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["requirements"]
    assert spec["properties"]["deletionPolicy"]["default"] == "Retain"
    # Unset, the mode is the operator's default (the chart's autonomy.defaultMode).
    autonomy = spec["properties"]["autonomy"]
    assert "mode" not in autonomy["default"]
    assert autonomy["default"]["maxActionsPerHour"] == 6
    assert autonomy["properties"]["mode"]["enum"] == ["observe", "recommend", "auto"]
    assert spec["properties"]["postgres"]["default"] == {"enabled": True}
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert any("availability != 'high'" in r for r in rules)
    requirements = spec["properties"]["requirements"]["properties"]
    assert requirements["availability"]["enum"] == ["standard", "high"]
    assert "Compressed on-disk volume" in requirements["dataVolume"]["description"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:4] == ["Phase", "Shards", "Replicas", "Ready"]
    assert crd["spec"]["names"]["shortNames"] == ["dp"]


def test_crds_directory_matches_the_models() -> None:
    committed = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert committed == crdgen.files(), "crds/ is stale: run `make crds`"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert crdgen.main([str(tmp_path)]) == 0
    assert crdgen.main(["--check", str(tmp_path)]) == 0
    first = next(tmp_path.glob("*.yaml"))
    first.write_text(first.read_text() + "# edited by hand\n")
    assert crdgen.main(["--check", str(tmp_path)]) == 1


def test_generated_yaml_has_no_aliases() -> None:
    for text in crdgen.files().values():
        assert "&id" not in text
        assert "*id" not in text
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_model_and_schema_agree_on_an_example() -> None:
    example = {"requirements": {"dataVolume": "2Ti", "availability": "high"}}
    spec = DataPlatformSpec.model_validate(example)
    assert spec.requirements.data_bytes == 2 * 2**40
    assert spec.deletion_policy == "Retain"
    with pytest.raises(ValueError, match=r"requirements\.availability"):
        DataPlatformSpec.model_validate(
            {"requirements": {"dataVolume": "1Ti", "availability": "x"}}
        )


def test_maps_keep_their_value_schema_so_the_api_server_does_not_prune_them() -> None:
    crd = crdgen.build_crd(next(k for k in crdgen.KINDS if k.kind == "Remediation"))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    parameters = spec["properties"]["action"]["properties"]["parameters"]
    assert parameters["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in spec


def test_the_crd_reference_is_generated_from_the_same_schemas() -> None:
    from duet_operator import crddocs  # noqa: PLC0415

    text = crddocs.render()
    assert (REPO / "docs" / "crds.md").read_text() == text, "docs/crds.md is stale: run `make crds`"
    assert "| `spec.requirements.dataVolume` | quantity (int or string) | yes |" in text
    assert "scaleOut always needs approval" in text
