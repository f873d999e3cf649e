"""sdk.settings_errors: one line naming the environment variable, however a value came in."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sdk.settings_errors import describe_settings_error


class Knobs(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    ttl: int = Field(60, validation_alias="POOL_TTL", ge=1)
    ratio: float = Field(0.5, validation_alias="POOL_RATIO")
    mode: str = Field("a", validation_alias="POOL_MODE")

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("a", "b"):
            raise ValueError(f"expected a or b, got {value!r}")
        return value


def _describe(**values: object) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        Knobs.model_validate(values)
    return describe_settings_error(caught.value, Knobs)


def test_each_problem_names_its_variable_given_by_alias() -> None:
    assert _describe(POOL_TTL="abc") == ("POOL_TTL", "expected an integer, got 'abc'")
    assert _describe(POOL_TTL="0", POOL_RATIO="x", POOL_MODE="c") == (
        "POOL_TTL", "must be >= 1, got '0'; POOL_RATIO: expected a number, got 'x'; "
        "POOL_MODE: expected a or b, got 'c'")


def test_a_value_given_by_field_name_still_names_the_variable() -> None:
    assert _describe(ttl="abc") == ("POOL_TTL", "expected an integer, got 'abc'")
