"""Loaded by every Python process a travelling test run starts (tests/conftest.py puts this folder
on PYTHONPATH): `hotline worker`, `hotline up` and the like then read the same moved clock as the
test process, `HOTLINE_TEST_CLOCK_OFFSET` seconds from the real one, ticking."""

import os

_offset = os.environ.get("HOTLINE_TEST_CLOCK_OFFSET")
if _offset:
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(seconds=float(_offset)), tick=True).start()
