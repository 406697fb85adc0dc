"""Reading DataPlatforms from files, with errors that name the field to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from duet_operator.models import DataPlatform


class InvalidInputError(ValueError):
    """Input the user must fix; the message names the field."""


def field_errors(error: ValidationError) -> str:
    """`spec.requirements.availability: Input should be 'standard' or 'high'`, one per line."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(document)"
        lines.append(f"{where}: {item['msg']}")
    return "\n".join(lines)


def load_platform(path: Path, *, namespace: str = "default") -> DataPlatform:
    """The first DataPlatform in a YAML file (kubectl-style, several documents allowed)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as e:
        raise InvalidInputError(f"{path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise InvalidInputError(f"{path}: not valid YAML: {e}") from e
    platforms = [d for d in documents if isinstance(d, dict) and d.get("kind") == "DataPlatform"]
    if not platforms:
        raise InvalidInputError(f"{path}: no document of kind DataPlatform")
    body: dict[str, Any] = dict(platforms[0])
    body.setdefault("metadata", {}).setdefault("namespace", namespace)
    try:
        return DataPlatform.model_validate(body)
    except ValidationError as e:
        raise InvalidInputError(f"{path}: invalid DataPlatform\n{field_errors(e)}") from e
