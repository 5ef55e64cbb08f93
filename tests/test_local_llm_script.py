"""``scripts/local-llm``'s build: portable by default, and its options in the wheel's cache key."""

import os
import subprocess

from tests.servers import BASE_DIR


def _build_options(cmake_args: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    if cmake_args is not None:
        env["CMAKE_ARGS"] = cmake_args
    result = subprocess.run(
        ["bash", "scripts/local-llm", "build-options"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # NAME=value lines: CMAKE_ARGS and WHEEL_DIR (the wheel's directory in the cache).
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_llama_cpp_is_built_portable_without_amx() -> None:
    # -march=native turned on AMX on a Xeon VM, and that build crashed on its first completion.
    args = _build_options()["CMAKE_ARGS"].split()
    assert "-DGGML_NATIVE=OFF" in args
    assert "-DGGML_NATIVE=ON" not in args
    assert not [arg for arg in args if "AMX" in arg]


def test_the_cmake_options_are_in_the_wheel_cache_key() -> None:
    default, native = _build_options(), _build_options("-DGGML_NATIVE=ON")
    assert native["CMAKE_ARGS"].endswith(" -DGGML_NATIVE=ON")  # the user's options come last
    assert native["WHEEL_DIR"] != default["WHEEL_DIR"]
    assert _build_options()["WHEEL_DIR"] == default["WHEEL_DIR"]
