import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel

from streaming.tools.builtin import calculator, echo, read_file
from streaming.tools.calculator import CalculatorError, evaluate
from streaming.tools.registry import (
    SettingsToolRegistry,
    ToolRegistry,
    declared_client_tool,
    get_tool_registry,
    reset_tool_registry,
    server_tool,
)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1+2*3", 7),
        ("(1+2)*3", 9),
        ("-2**2", -4),
        ("7//2", 3),
        ("7%4", 3),
        ("1/4", 0.25),
        ("2**10", 1024),
        ("2.5*2", 5.0),
    ],
)
def test_calculator_values(expr: str, value: float) -> None:
    assert evaluate(expr) == value


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os')", "Call is not allowed"),
        ("9**9**9", "exponent larger than 1000"),
        ("1" + "+1" * 150, "longer than 200 characters"),
        ("2**4000", "exponent larger than 1000"),
        ("99999**999", "result too large"),
        ("10.0**400", "result too large"),
        ("1/0", "division by zero"),
        ("(-8)**0.5", "not a real number"),
        ("x + 1", "Name is not allowed"),
        ("[1][0]", "is not allowed"),
        ("True + 1", "Constant is not allowed"),
        ("1 +", "not an arithmetic expression"),
        ("(1)" * 60, "expression too complex"),
    ],
)
def test_calculator_rejects(expr: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message.replace("(", r"\(").replace("*", r"\*")):
        evaluate(expr)


def test_schemas_are_generated_from_the_arguments_models() -> None:
    assert calculator.openai_schema() == {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression exactly and return its value.",
            "parameters": {
                "type": "object",
                "properties": {
                    "expr": {
                        "type": "string",
                        "maxLength": 200,
                        "title": "Expr",
                        "description": (
                            "An arithmetic expression: numbers, + - * / // % ** and parentheses."
                        ),
                    }
                },
                "required": ["expr"],
            },
        },
    }


def test_settings_choose_the_tools(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOLS = ["streaming.tools.builtin.echo", "streaming.tools.builtin.read_file"]
    registry = SettingsToolRegistry()
    assert [t.name for t in registry] == ["echo", "read_file"]
    assert registry.get("read_file").executor == "client"
    assert registry.get("calculator") is None


@pytest.mark.parametrize(
    "path", ["streaming.tools.builtin.nothing", "streaming.tools.builtin.EchoArguments"]
)
def test_bad_tool_paths_are_a_configuration_error(settings, path: str) -> None:  # type: ignore[no-untyped-def]
    settings.TOOLS = [path]
    with pytest.raises(ImproperlyConfigured):
        SettingsToolRegistry()


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="Two tools"):
        ToolRegistry([echo, echo])


def test_registry_class_is_a_setting(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOL_REGISTRY = "tests.streaming.test_tools.OnlyReadFile"
    reset_tool_registry()
    try:
        assert [t.name for t in get_tool_registry()] == ["read_file"]
    finally:
        reset_tool_registry()


class OnlyReadFile(ToolRegistry):
    def __init__(self) -> None:
        super().__init__([read_file])


async def test_builtin_functions() -> None:
    assert await echo.function(echo.arguments(text="x")) == "x"
    assert await calculator.function(calculator.arguments(expr="6*7")) == 42


def test_a_turns_declared_tools_extend_the_registry_and_never_replace_a_configured_one() -> None:
    class Args(BaseModel):
        x: int

    configured = ToolRegistry([server_tool(name="calc", description="c", arguments=Args)(_noop)])
    declared = [
        declared_client_tool(name="calc", description="clash", parameters={"type": "object"}),
        declared_client_tool(name="open_tab", description="o", parameters=None),
        declared_client_tool(name="open_tab", description="again", parameters=None),
    ]
    turn = configured.with_tools(declared)
    assert configured.with_tools([]) is configured
    assert configured.get("open_tab") is None  # the configured registry is unchanged
    assert turn.get("calc").executor == "server"
    assert turn.get("open_tab").description == "o"
    assert [s["function"]["name"] for s in turn.openai_schemas] == ["calc", "open_tab"]
    assert turn.openai_schemas[1]["function"]["parameters"] == {"type": "object", "properties": {}}


async def _noop(arguments: object) -> None:
    return None
