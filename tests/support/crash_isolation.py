"""A pytest plugin: tests marked `native_llm` run in a forked child (pytest-forked).

llama.cpp built for another CPU dies with SIGILL or SIGSEGV inside its first matrix product. In the pytest
process that would end the whole run with "Segmentation fault" and no report; in a forked child it fails
that one test, "running the test CRASHED with signal 11 (SIGSEGV)", and the rest of the suite still runs.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("native_llm") is not None:
            item.add_marker(pytest.mark.forked)
