"""The journeys' world and the real-browser fixtures, for operations tests through the front door."""

from tests.e2e.conftest import (  # noqa: F401
    browser_context,
    chromium_path,
    e2e_env,
    live_server,
    page,
)
from tests.journeys.conftest import world  # noqa: F401
