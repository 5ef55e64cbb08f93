"""Every setting read from the environment is listed in ``.env.example``."""

import ast
import re

from tests.servers import BASE_DIR

SETTINGS = [BASE_DIR / "agent_runtime" / name for name in ("settings.py", "runtime_settings.py")]
EXAMPLE = BASE_DIR / ".env.example"


def settings_read_from_env() -> set[str]:
    """The names of every ``env("NAME", ...)`` and ``env.<type>("NAME", ...)`` call in
    the settings modules, found in their syntax trees so that a setting added anywhere is found."""
    names = set()
    trees = [ast.parse(path.read_text()) for path in SETTINGS]
    for node in (node for tree in trees for node in ast.walk(tree)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        reads_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        first = node.args[0]
        if reads_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.add(first.value)
    return names


def settings_in_example() -> set[str]:
    """The variables ``.env.example`` lists, set or commented out (``# AGENT_RUNTIME__X=``)."""
    found = re.findall(r"^#?\s*AGENT_RUNTIME__(\w+)=", EXAMPLE.read_text(), flags=re.MULTILINE)
    return set(found)


def test_the_parser_finds_the_settings_read_from_the_environment() -> None:
    names = settings_read_from_env()
    # A few of each kind of call, so that a parser that finds nothing cannot pass below.
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "LLM_READ_TIMEOUT"} <= names
    assert len(names) > 40


def test_every_setting_read_from_the_environment_is_in_env_example() -> None:
    missing = sorted(settings_read_from_env() - settings_in_example())
    assert missing == [], f"add these to .env.example, each with a comment: {missing}"
