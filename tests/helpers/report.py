"""Put a line of figures into the pytest terminal output, past output capturing, so CI logs show
what the reliability tests measured without -s."""

from __future__ import annotations

import pytest


def announce(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
