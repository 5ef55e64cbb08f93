"""JSON-schema arguments: the same invalid_arguments outcome as a Pydantic arguments model."""

import pytest

from streaming.llm_client import ToolCallDelta
from streaming.tool_calls import ToolCall, ToolCallAssembler, tool_rejected
from streaming.tools.registry import Tool, ToolRegistry
from streaming.tools.schema_arguments import SchemaArguments

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "days": {"type": "integer", "maximum": 7},
    },
    "required": ["city"],
    "title": "forecastArguments",
}


async def _nothing(arguments: dict) -> None:
    return None


def _registry() -> ToolRegistry:
    return ToolRegistry([Tool("forecast", "Weather.", SchemaArguments(SCHEMA), "server", _nothing)])


def _call(raw: str) -> ToolCall:
    [call] = _calls(("forecast", raw))
    return call


def _calls(*pairs: tuple[str, str]) -> list[ToolCall]:
    assembler = ToolCallAssembler()
    for index, (name, raw) in enumerate(pairs):
        assembler.add(ToolCallDelta(index=index, id=f"c{index}", name=name, arguments=raw))
    return assembler.calls(_registry())


def test_valid_arguments_are_the_decoded_object() -> None:
    call = _call('{"city": "Oslo", "days": 3}')
    assert call.problem is None
    assert call.arguments == {"city": "Oslo", "days": 3}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"days": 3}', "invalid arguments: arguments: 'city' is a required property"),
        ('{"city": "Oslo", "days": 9}', "invalid arguments: days: 9 is greater than the maximum"),
        ('{"city": ""}', "invalid arguments: city: '' should be non-empty"),
        ('{"city": ', "invalid arguments: arguments: Invalid JSON"),
        ("[1, 2]", "invalid arguments: arguments: Arguments must be a JSON object"),
    ],
)
def test_invalid_arguments_are_an_invalid_arguments_error(raw: str, problem: str) -> None:
    call = _call(raw)
    assert call.problem is not None
    assert call.problem.startswith(problem)
    outcome = tool_rejected(call)
    assert (outcome.error_code, outcome.error) == ("invalid_arguments", call.problem)


def test_the_schema_offered_to_the_model_is_the_servers() -> None:
    [schema] = _registry().openai_schemas
    expected = {k: v for k, v in SCHEMA.items() if k != "title"}
    assert schema == {
        "type": "function",
        "function": {"name": "forecast", "description": "Weather.", "parameters": expected},
    }


def test_braces_in_messages_are_kept() -> None:
    arguments = SchemaArguments({"type": "object", "properties": {"x": {"const": "{a}"}}})
    with pytest.raises(Exception, match=r"'\{a\}' was expected"):
        arguments.model_validate_json('{"x": "b"}')


def test_an_invalid_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid JSON schema"):
        SchemaArguments({"type": "object", "properties": {"x": {"type": 5}}})
