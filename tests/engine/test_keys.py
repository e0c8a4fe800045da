"""Send-step keys: slug rules, format, cutting at the limit (SPEC §4)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeys_engine.model.keys import KEY_PATTERN, make_key, slug

SPEC_KEY = re.compile(r"j_o_[a-z0-9_]+__[a-z0-9_]+_[a-z0-9]{6}")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Cart Abandonment", "cart_abandonment"),
        ("  Hello,   World!  ", "hello_world"),
        ("__already__snake__", "already_snake"),
        ("Émile's café №1", "mile_s_caf_1"),
        ("UPPER-case.dots", "upper_case_dots"),
        ("a---b", "a_b"),
    ],
)
def test_slug(name: str, expected: str) -> None:
    assert slug(name, "journey") == expected


@pytest.mark.parametrize("name", ["", "!!!", "   ", "日本語"])
def test_empty_slug_becomes_the_fallback(name: str) -> None:
    assert slug(name, "journey") == "journey"
    assert slug(name, "step") == "step"


def test_key_format() -> None:
    key = make_key("Cart Abandonment", "Send Email!", max_length=255, suffix="abc123")
    assert key == "j_o_cart_abandonment__send_email_abc123"


def test_key_suffix_is_six_random_characters() -> None:
    keys = {make_key("J", "S", max_length=255) for _ in range(50)}
    assert len(keys) > 45
    for key in keys:
        assert SPEC_KEY.fullmatch(key), key
        assert re.fullmatch(r"[a-z0-9]{6}", key.rsplit("_", 1)[1])


def test_empty_slugs_in_a_key() -> None:
    assert make_key("***", "", max_length=255, suffix="zzzzzz") == "j_o_journey__step_zzzzzz"


def test_maximal_names_cut_the_step_slug_first() -> None:
    journey_name, step_name = "j" * 73, "s" * 170
    key = make_key(journey_name, step_name, max_length=255, suffix="000000")
    assert len(key) == 255
    assert key == "j_o_" + "j" * 73 + "__" + "s" * 169 + "_000000"


def test_journey_slug_is_cut_when_the_step_slug_is_not_enough() -> None:
    key = make_key("j" * 50, "s" * 50, max_length=40, suffix="000000")
    assert len(key) == 40
    assert key == "j_o_" + "j" * 26 + "__" + "s" + "_000000"


def test_short_names_are_not_cut() -> None:
    key = make_key("a" * 10, "b" * 10, max_length=255, suffix="000000")
    assert key == "j_o_" + "a" * 10 + "__" + "b" * 10 + "_000000"


@given(st.text(max_size=73), st.text(max_size=170))
def test_every_key_fits_and_matches_the_pattern(journey_name: str, step_name: str) -> None:
    key = make_key(journey_name, step_name, max_length=255)
    assert len(key) <= 255
    assert KEY_PATTERN.fullmatch(key)
    assert SPEC_KEY.fullmatch(key)
    full_journey, full_step = slug(journey_name, "journey"), slug(step_name, "step")
    assert key.startswith(f"j_o_{full_journey[:73]}__")
    step_part = key[len(f"j_o_{full_journey}__") : -7]
    assert full_step.startswith(step_part)
