"""Rules files: TOML and JSON, validated against the catalogue's parameter bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerting.engine import Engine
from alerting.rules import default_rules
from alerting.settings import Profile, SettingsError, load_config

TOML = """
disabled = ["hf.weight_gain_1d"]

[thresholds."hf.weight_gain_3d"]
kg = 2.5

[patients.p-001]
profile = ["heart_failure", "diabetes"]
age = 82
symptoms = true
[patients.p-001.thresholds."dm.hypoglycaemia"]
l2 = 60
"""


def test_toml_and_json_load_the_same(tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text(TOML)
    config = load_config(toml)
    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps(config.model_dump(mode="json")))
    assert load_config(as_json) == config
    patient = config.for_patient("p-001")
    assert patient.age == 82 and Profile.DIABETES in patient.profile
    assert patient.older_or_high_risk
    Engine(config)  # validates against the catalogue


@pytest.mark.parametrize(("body", "match"), [
    ('{"thresholds": {"hf.nope": {"kg": 2}}}', "unknown rule"),
    ('{"thresholds": {"hf.weight_gain_3d": {"kg": 40}}}', "less than or equal"),
    ('{"thresholds": {"hf.weight_gain_3d": {"kgs": 2}}}', "Extra inputs"),
    ('{"patients": {"p": {"age": -3}}}', "greater than or equal"),
    ('{"patients": {"p": {"profile": "cancer"}}}', "profile"),
    ('{"disabled": ["silence.glucose"]}', "cannot be disabled"),
    ('[1, 2]', "object"),
    ('{"thresholds": ', "not valid"),
])
def test_bad_rules_files(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "rules.json"
    path.write_text(body)
    with pytest.raises(SettingsError, match=match):
        Engine(load_config(path))


def test_patient_override_must_agree_with_global(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"patients": {"p": {"thresholds": {
        "dm.hypoglycaemia": {"l2": 40, "l1": 54}}}}}))
    Engine(load_config(path))


def test_every_rule_documents_its_source_and_has_sane_defaults() -> None:
    ids = set()
    for rule in default_rules():
        assert rule.__doc__ and len(rule.__doc__) > 40, rule.id
        assert rule.id not in ids
        ids.add(rule.id)
        rule.make_params({})  # defaults inside their own bounds
        assert rule.ladder
