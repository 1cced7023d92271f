"""The building blocks of the config schema: strict sections and field types.

Shared by `config.py` (the experiment's sections) and `layer_kinds.py` (each
layer kind's arguments), so both read YAML the same way, and both report a
validation error as one line naming the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from involution_bench.errors import ConfigError


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


def config_error(
    exc: ValidationError, source: str, schema: type[BaseModel], prefix: tuple = ()
) -> ConfigError:
    """The first validation error as one line naming the key (and, for a typo, the
    key that was probably meant)."""
    error = exc.errors()[0]
    loc = prefix + tuple(error["loc"])
    key = _format_key(loc)
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(schema, tuple(error["loc"][:-1]))
        return ConfigError(source, key, f"unknown key{did_you_mean(str(loc[-1]), allowed)}")
    message = error["msg"][0].lower() + error["msg"][1:]
    if error["type"] == "missing":
        return ConfigError(source, key, "is required")
    return ConfigError(source, key, f"{message}, got {error['input']!r}")


def _fields_at(schema: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = schema.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        schema = annotation
    return list(schema.model_fields)


def _format_key(loc: tuple) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'epochs'?" for a close match among `choices`, else ""."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""
