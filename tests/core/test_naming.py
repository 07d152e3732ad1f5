"""Names and version numbers are checked by full match, everywhere (issue 10: patterns ending in
``$`` let ``"digits\\n"`` through ``re.match``), and a version number past 64 bits is refused
where it enters, never passed on to a store that overflows on it."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from functions.batch.events import InvalidInputKey, parse_input_key
from functions.core.naming import (
    MAX_VERSION,
    component_name,
    is_alias_name,
    is_model_name,
    is_tenant_name,
    is_version_number,
    version_of_component,
)
from functions.core.registry.exceptions import InvalidAliasTarget
from functions.core.registry.rules import check_alias_name
from functions.core.settings import Settings
from serving.app import _parse_variant
from serving.exceptions import UnknownTarget

TRAILING = ["digits\n", "digits\r\n", "\ndigits", "digits\n\n", "dig\nits", "digits "]


@pytest.mark.parametrize("name", TRAILING)
def test_a_name_with_a_newline_or_space_is_no_name(name: str) -> None:
    assert not is_model_name(name)
    assert not is_alias_name(name)
    assert not is_tenant_name(name)


def test_good_names_and_numbers() -> None:
    assert is_model_name("digits")
    assert is_alias_name("prod")
    assert is_tenant_name("acme")
    assert is_version_number(1)
    assert is_version_number(MAX_VERSION)
    assert not is_version_number(0)
    assert not is_version_number(MAX_VERSION + 1)


def test_every_entry_point_refuses_a_trailing_newline() -> None:
    with pytest.raises(InvalidAliasTarget):
        check_alias_name("default\n")
    with pytest.raises(InvalidInputKey):
        parse_input_key("inputs/digits\n/default/a.jsonl")
    with pytest.raises(InvalidInputKey):
        parse_input_key("inputs/digits/default\n/a.jsonl")
    with pytest.raises(UnknownTarget):
        _parse_variant("v1\n")


@pytest.mark.parametrize("segment", ["99999999999999999999", "v37758839676792876302336", "0"])
def test_an_input_key_naming_an_impossible_version_is_refused(segment: str) -> None:
    with pytest.raises(InvalidInputKey):
        parse_input_key(f"inputs/digits/{segment}/a.jsonl")
    assert parse_input_key(f"inputs/digits/{MAX_VERSION}/a.jsonl").version == MAX_VERSION


# SageMaker's own pattern for model, endpoint-config and endpoint names.
SAGEMAKER_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


@pytest.mark.parametrize("name", ["digits", "a", "bert-base", "x--y", "9" * 40])
def test_valid_model_names_are_valid_sagemaker_names(name: str) -> None:
    assert is_model_name(name)
    assert re.fullmatch(SAGEMAKER_NAME, f"modelway-prod-{name}")


@pytest.mark.parametrize("name", ["digits-", "-digits", "Digits", "a" * 41, "", "di_gits"])
def test_names_sagemaker_would_refuse_are_refused(name: str) -> None:
    assert not is_model_name(name)


def test_settings_refuse_what_sagemaker_and_the_name_patterns_refuse() -> None:
    with pytest.raises(ValidationError):
        Settings(env="prod-eu")
    with pytest.raises(ValidationError):
        Settings(deploy_canary_percent=60)
    with pytest.raises(ValidationError, match="LINEAR"):
        Settings(deploy_traffic_routing="LINEAR", deploy_canary_percent=5)
    assert Settings(deploy_traffic_routing="CANARY", deploy_canary_percent=50)


def test_component_names_fit_sagemaker_and_always_end_in_their_version() -> None:
    short = component_name(endpoint="modelway-prod-digits", variant="v12")
    assert short == "modelway-prod-digits-v12"
    assert version_of_component(short) == 12
    # The longest model name in the longest environment, and a large version: cut and
    # hashed, still unique, still a SageMaker name, the version still readable.
    endpoint = f"modelway-{'e' * 16}-{'m' * 40}"
    names = {component_name(endpoint=endpoint, variant=f"v{n}") for n in (1, 2, 10**12)}
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63
        assert re.fullmatch(SAGEMAKER_NAME, name)
    assert version_of_component(component_name(endpoint=endpoint, variant="v1000000000000")) == (
        10**12
    )
    assert version_of_component("modelway-prod-digits-fleet") is None
    assert version_of_component("modelway-prod-digits-v01") is None


def test_variants_hosting_needs_an_instance_components_may_scale_to_zero() -> None:
    with pytest.raises(ValidationError, match="min_instance_count >= 1"):
        Settings(hosting="variants", min_instance_count=0)
    assert Settings(hosting="components", min_instance_count=0).min_instance_count == 0
