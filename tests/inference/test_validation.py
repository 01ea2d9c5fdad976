"""Validation errors render as strict JSON even when the offending input cannot be."""

from __future__ import annotations

import json
import math

import httpx

from streamtune.inference.validation import render_errors


def strict(value: object) -> bytes:
    return json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def test_unrepresentable_inputs_are_left_out_and_the_field_still_named():
    errors = [
        {
            "type": "string_type",
            "loc": ("body", "instances", 0, "text"),
            "msg": "Input should be a valid string",
            "input": math.nan,
        },
        {
            "type": "finite_number",
            "loc": ("body", "top_k"),
            "msg": "Input should be a finite number",
            "input": math.inf,
        },
        {
            "type": "string_unicode",
            "loc": ("body", "\ud800"),
            "msg": "Input should be a valid string",
            "input": "x\ud800",
        },
    ]
    rendered = render_errors(errors)
    strict(rendered)
    assert [e["loc"] for e in rendered] == [["body", "instances", 0, "text"], ["body", "top_k"], ["body", "\\ud800"]]
    assert all("input" not in e for e in rendered)
    assert "NaN or Infinity" in rendered[0]["msg"] and "NaN or Infinity" in rendered[1]["msg"]
    assert "lone UTF-16 surrogate" in rendered[2]["msg"]


def test_representable_inputs_and_contexts_are_kept():
    errors = [
        {
            "type": "string_too_long",
            "loc": ("body", "text"),
            "msg": "too long",
            "input": "abc",
            "ctx": {"max_length": 2},
        },
        {
            "type": "value_error",
            "loc": ("body",),
            "msg": "Value error, ids",
            "input": {"a": [1]},
            "ctx": {"error": ValueError("ids")},
        },
    ]
    rendered = render_errors(errors)
    strict(rendered)
    assert rendered[0] == {
        "type": "string_too_long",
        "loc": ["body", "text"],
        "msg": "too long",
        "input": "abc",
        "ctx": {"max_length": 2},
    }
    assert rendered[1]["input"] == {"a": [1]} and rendered[1]["ctx"] == {"error": "ids"}


def test_a_422_quotes_only_a_short_prefix_of_a_long_value(settings):
    from tests.inference.serving import serving

    long_text = "word " * 1000
    with serving(settings, max_text_chars=100) as server:
        response = httpx.post(f"{server.url}/v1/predict", json={"instances": [{"text": long_text, "extra": 1}]})
    assert response.status_code == 422
    assert len(response.text) < 1000, response.text  # not the 5,000 characters sent
    problem = next(p for p in response.json()["detail"] if p["loc"][-1] == "text")
    assert problem["input"] == long_text[:80] + "… (5000 characters)"
