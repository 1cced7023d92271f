"""The building blocks of the config schema: strict sections and field types.

Shared by `config.py` (the experiment's sections) and `layer_kinds.py` (each
layer kind's arguments), so both read YAML the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _yaml_float(value: Any) -> Any:
    # PyYAML reads `1e-3` (no dot) as a string; accept what a person means.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Float = Annotated[float, BeforeValidator(_yaml_float)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
LayerName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")] | None
Activation = Literal["relu", "gelu", "swish", "sigmoid", "tanh", "softmax"] | None


class Section(BaseModel):
    # strict: no silent "32" -> 32 or true -> 1; forbid: typos are errors.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
