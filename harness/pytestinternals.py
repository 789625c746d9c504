"""The one place the harness touches pytest's internals, each where pytest has no public API for the job.

Both sides use it (the guest agent and the host's plugin), so it imports
nothing of the harness. Each function names what it relies on; a pytest
release that moves it breaks here, in one file, and ``tests/plugin/test_core.py``
and ``tests/vm/`` say so.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


def set_nodeid(item: pytest.Item, nodeid: str) -> None:
    """Give an item another node id: pytest keeps it in ``_nodeid`` up to 8.4, in a structured
    ``_id`` from 9, and reads it for the reports and ``PYTEST_CURRENT_TEST``."""
    if hasattr(item, "_id"):
        item._id = type(item._id).parse(nodeid)
    else:
        item._nodeid = nodeid  # type: ignore[attr-defined]


def set_testcase_factory(item: pytest.Function, make: Callable[[], object]) -> None:
    """How a ``unittest.TestCase`` method's item makes its TestCase (``_getinstance``): by default
    from the item's name, which the guest changes."""
    item._getinstance = make  # type: ignore[method-assign]


def count_collected(config: pytest.Config, more: int) -> None:
    """Add to the terminal header's "collected N items" (``_numcollected``), which counts what
    collection made, not the items collection ends with."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and hasattr(reporter, "_numcollected"):
        reporter._numcollected += more


def keyword_expression(expression: str) -> Callable[[pytest.Item, Callable[[str], bool]], bool] | None:
    """``-k`` compiled as pytest compiles it, or None when it does not compile (pytest's own ``-k``
    then reports it). The result tells whether an item matches, as pytest matches it (a substring of
    its names, markers and keywords), or an extra test of each name says it does."""
    from _pytest.mark import KeywordMatcher  # noqa: PLC0415
    from _pytest.mark.expression import Expression  # noqa: PLC0415

    try:
        compiled = Expression.compile(expression)
    except Exception:  # noqa: BLE001 - SyntaxError in pytest 9, ParseError before
        return None

    def matches(item: pytest.Item, extra: Callable[[str], bool]) -> bool:
        own = KeywordMatcher.from_item(item)
        return compiled.evaluate(
            lambda name, /, **kwargs: own(name, **kwargs) or (not kwargs and extra(name))
        )

    return matches


def builtin_plugin_modules() -> list[str]:
    """The modules of pytest's own plugins (``_pytest.config``'s essential and default lists)."""
    from _pytest.config import default_plugins, essential_plugins  # noqa: PLC0415

    return [f"_pytest.{name}" for name in (*essential_plugins, *default_plugins)]
