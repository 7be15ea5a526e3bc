"""Several machines' worth of processes on one PostgreSQL and one Redis: 3 web processes, 4 workers
and 2 SMTP listeners take a (small) surge of calls and emails — duplicates across both listeners, a
worker killed and a listener restarted midway — and every contact is one ticket, every email
acknowledged once, nothing failed for good. `bench/bench_surge.py` runs the full size (500 calls,
2,000 emails) next to one process of each."""

from __future__ import annotations

import pytest

from bench.bench_surge import check, surge
from tests.conftest import _pg_admin_url, _pg_reachable


@pytest.mark.slow
def test_a_surge_across_several_processes_counts_every_contact_once():
    admin = _pg_admin_url()
    if admin is None or not _pg_reachable(admin):
        pytest.skip("PostgreSQL is not reachable")
    result = surge(admin, calls=20, emails=60, webs=3, workers=4, listeners=2)
    assert check(result) == []
    assert result["contacts_per_second"] > 0 and result["p99_routed_seconds"] > 0
