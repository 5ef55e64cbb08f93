"""Skips that CI can forbid.

A test skips only when something a user can install or start is missing, and says what to do.
Each such skip has its own ``REQUIRE_...`` switch: set to ``1`` it makes the skip a failure.
``REQUIRE_NO_SKIPS=1`` (``tests/conftest.py``) does the same for every skip of the suite.
"""

import os
from typing import NoReturn

import pytest


def skip_unless_required(switch: str, reason: str) -> NoReturn:
    """Skip for ``reason`` (which names the fix), or fail when ``switch=1`` says it must run."""
    if os.environ.get(switch) == "1":
        pytest.fail(f"{switch}=1 but {reason}")
    pytest.skip(f"{reason} (set {switch}=1 to make this a failure)")
