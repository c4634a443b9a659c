"""gateway/schema_rules.py: inverted repetition ranges, which llama.cpp expands until the kernel kills it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.errors import from_validation
from gateway.protocol import ChatCompletionRequest
from gateway.schema_rules import Inverted, check_grammar, check_schema, inverted_range


@pytest.mark.parametrize(
    ("text", "grammar", "found"),
    [
        ("^a{5,2}$", False, "{5,2}"),
        ("^(ab){3,10}x{10,9}$", False, "{10,9}"),
        ("^a{2,5}$", False, None),
        ("^a{5,}$", False, None),
        ("^a{5}$", False, None),
        (r"^\{5,2\}$", False, None),  # escaped braces: literal text
        (r"^\\{5,2}$", False, "{5,2}"),  # an escaped backslash, then a real quantifier
        ("^[{5,2}]+$", False, None),  # inside a character class
        (r"^[\]{5,2}]$", False, None),  # an escaped ] does not end the class
        ("^a{ 5 , 2 }$", False, None),  # not a quantifier in a regex
        ('root ::= "a"{5,2}', True, "{5,2}"),
        ('root ::= "a" { 5 , 2 }', True, "{ 5 , 2 }"),  # llama.cpp's parser takes spaces
        ('root ::= "{5,2}"', True, None),  # a quoted literal
        ('root ::= "\\"{5,2}"', True, None),  # an escaped quote does not end the literal
        ('# x{5,2}\nroot ::= "a"{2,5}', True, None),  # a comment
        ("root ::= [{]{3,1}", True, "{3,1}"),  # a class, then a real repetition
    ],
)
def test_inverted_ranges_are_found_where_they_quantify(text: str, grammar: bool, found: str | None) -> None:
    assert inverted_range(text, grammar) == found


@pytest.mark.parametrize(
    ("schema", "param"),
    [
        ({"type": "string", "minLength": 10, "maxLength": 5}, "s.minLength"),
        ({"type": "array", "minItems": 5, "maxItems": 2}, "s.minItems"),
        ({"type": "object", "minProperties": 3, "maxProperties": 1}, "s.minProperties"),
        ({"type": "array", "contains": {}, "minContains": 2, "maxContains": 1}, "s.minContains"),
        (
            {"properties": {"a": {"items": [{"type": "string", "pattern": "^a{5,2}$"}]}}},
            "s.properties.a.items.0.pattern",
        ),
        ({"patternProperties": {"^x{3,1}$": {}}}, "s.patternProperties"),
        # Empty numeric ranges: llama.cpp answers an integer one with a 500 while decoding.
        ({"type": "integer", "minimum": 10, "maximum": 1}, "s.minimum"),
        ({"type": "number", "minimum": 2.5, "maximum": 2.25}, "s.minimum"),
        ({"type": "number", "exclusiveMinimum": 5, "maximum": 5}, "s.exclusiveMinimum"),
        ({"type": "number", "minimum": 5, "exclusiveMaximum": 5}, "s.minimum"),
        ({"type": "integer", "minimum": 2.5, "maximum": 2.75}, "s.minimum"),  # no integer between
        ({"type": "integer", "exclusiveMinimum": 2, "exclusiveMaximum": 3}, "s.exclusiveMinimum"),
        ({"minimum": 0, "exclusiveMinimum": 4, "maximum": 3}, "s.exclusiveMinimum"),  # the tighter lower bound
        ({"properties": {"a": {"type": "integer", "minimum": 3, "maximum": 1}}}, "s.properties.a.minimum"),
    ],
)
def test_an_inverted_schema_is_refused_naming_where(schema: dict[str, Any], param: str) -> None:
    with pytest.raises(Inverted) as e:
        check_schema(schema, "s")
    assert e.value.param == param


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 5, "maxLength": 5},
        {"type": "integer", "minimum": 5, "maximum": 5},
        {"type": "integer", "minimum": 2.5, "maximum": 3},
        {"type": "integer", "exclusiveMinimum": 2, "exclusiveMaximum": 4},
        {"type": "number", "minimum": 2.5, "maximum": 2.75},  # a number between, if no integer
        {"type": "number", "exclusiveMinimum": 2, "exclusiveMaximum": 2.0001},
        {"type": ["integer", "null"], "minimum": 2.5, "maximum": 2.75},  # the integer rule reads one type only
        {"minimum": 5, "maximum": 5, "exclusiveMinimum": True},  # draft 4's flag: a bool is no bound
        {"type": "integer", "minimum": 10},
        {"const": {"minimum": 5, "maximum": 1}},
        {"type": "string", "minLength": True, "maxLength": 0},  # a bool is no bound
        {"properties": {"minLength": {"type": "integer"}, "maxLength": {"type": "integer"}}},  # property names
        {"properties": {"pattern": {"type": "string"}}},
        {"const": {"minItems": 5, "maxItems": 2}, "enum": [{"pattern": "a{5,2}"}], "default": {}, "examples": []},
        {"type": "string", "pattern": "^[a-z]{2,3}$"},
    ],
)
def test_a_schema_without_inverted_ranges_passes(schema: dict[str, Any]) -> None:
    check_schema(schema, "s")


def test_no_depth_of_nesting_exhausts_the_stack() -> None:
    schema: dict[str, Any] = {"type": "string", "minLength": 3, "maxLength": 1}
    for _ in range(50_000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(Inverted) as e:
        check_schema(schema, "s")
    assert e.value.param.endswith(".items.minLength")


def test_grammar_errors_name_the_parameter() -> None:
    with pytest.raises(Inverted) as e:
        check_grammar('root ::= "a"{5,2}', "grammar")
    assert e.value.param == "grammar" and "{5,2}" in str(e.value)


ARRAY = {"type": "array", "minItems": 5, "maxItems": 2}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": ARRAY}}},
            "response_format.json_schema.schema.minItems",
        ),
        ({"response_format": {"type": "json_object", "schema": ARRAY}}, "response_format.schema.minItems"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": ARRAY}}]},
            "tools.0.function.parameters.minItems",
        ),
        ({"json_schema": ARRAY}, "json_schema.minItems"),  # llama.cpp's own parameters
        ({"grammar": 'root ::= "a"{5,2}'}, "grammar"),
        # Both of llama.cpp's constraints at once: its server answers with a 500 (found fuzzing make serve).
        ({"grammar": 'root ::= "a"', "json_schema": {"type": "string"}}, "grammar"),
    ],
)
def test_a_chat_request_carrying_one_is_a_400_naming_it(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}], **extra})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.status, err.param, err.code) == (400, param, "invalid_value")
