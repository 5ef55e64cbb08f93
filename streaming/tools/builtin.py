"""The tools that ship with the runtime (``docs/api.md``)."""

from pydantic import BaseModel, Field

from streaming.tools.calculator import evaluate
from streaming.tools.registry import client_tool, server_tool


class EchoArguments(BaseModel):
    text: str = Field(description="The text to return.")


class CalculatorArguments(BaseModel):
    expr: str = Field(
        description="An arithmetic expression: numbers, + - * / // % ** and parentheses.",
        max_length=200,
    )


class ReadFileArguments(BaseModel):
    path: str = Field(description="Path of the file in the user's workspace.", min_length=1)


@server_tool(name="echo", description="Return the given text unchanged.", arguments=EchoArguments)
async def echo(arguments: EchoArguments) -> str:
    return arguments.text


@server_tool(
    name="calculator",
    description="Evaluate an arithmetic expression exactly and return its value.",
    arguments=CalculatorArguments,
)
async def calculator(arguments: CalculatorArguments) -> int | float:
    return evaluate(arguments.expr)


read_file = client_tool(
    name="read_file",
    description="Read a file from the user's workspace (runs in the IDE).",
    arguments=ReadFileArguments,
)
