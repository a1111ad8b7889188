"""Rule thresholds in the API: what JSON Schema calls an integer is taken as one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_api.routes.registry import RuleSettingsIn


def _min_age(value: object) -> object:
    body = RuleSettingsIn.model_validate(
        {"thresholds": {"nutrition.weight_loss": {"min_age": value}}})
    return body.model_dump(by_alias=True)["thresholds"]["nutrition.weight_loss"]["min_age"]


def test_an_integral_number_is_an_integer() -> None:
    assert _min_age(66.0) == 66 and _min_age(66) == 66  # schemathesis sends 66.0


@pytest.mark.parametrize("value", [66.5, True, "66"])
def test_a_fraction_a_boolean_or_a_string_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        _min_age(value)
