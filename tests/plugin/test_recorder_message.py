"""harness.plugin.recorder's short message of a failure, as results.json keeps it."""

from __future__ import annotations

from types import SimpleNamespace

from harness.plugin import recorder


def test_a_crash_keeps_pytests_crash_line():
    crash = SimpleNamespace(message="AssertionError: assert 1 == 2")
    report = SimpleNamespace(longrepr=SimpleNamespace(reprcrash=crash), longreprtext="the whole report")
    assert recorder._short(report) == "AssertionError: assert 1 == 2"


def test_a_python_traceback_as_text_keeps_its_end_where_the_exception_is():
    lines = ["Traceback (most recent call last):"]
    lines += [f'  File "/x/m{i}.py", line {i}, in f{i}\n    call{i}()' for i in range(10)]
    lines += ["OSError: [Errno 1] Operation not permitted"]
    report = SimpleNamespace(longrepr="\n".join(lines), longreprtext="\n".join(lines))
    short = recorder._short(report).splitlines()
    assert short[-1] == "OSError: [Errno 1] Operation not permitted" and len(short) == 6


def test_other_text_keeps_its_beginning():
    text = "kernel splat during the test on 6.1:\n" + "\n".join(f"line {i}" for i in range(20))
    report = SimpleNamespace(longrepr=text, longreprtext=text)
    assert recorder._short(report).splitlines()[0] == "kernel splat during the test on 6.1:"
