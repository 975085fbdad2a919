"""Fixtures of the chaos suite: one cluster for the whole run (scenarios
run in file order and each leaves the cluster healthy), torn down at the
end with a sanitizer check of every service log."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest
from chaos_harness import ChaosCluster, Workload

_cluster: ChaosCluster | None = None


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ChaosCluster]:
    global _cluster
    # 10,000 idle connections need the descriptors (the services inherit
    # the limit through dev-cluster).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 20000) if hard != resource.RLIM_INFINITY else 20000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    c = ChaosCluster()
    _cluster = c
    failed_before = request.session.testsfailed
    try:
        c.start()
        yield c
    finally:
        stopped = c.stop()
        _cluster = None
        reports = c.sanitizer_reports()
        ok = (stopped.returncode == 0 and not reports
              and request.session.testsfailed == failed_before)
        c.cleanup(keep=not ok or bool(os.environ.get("BASALT_CHAOS_KEEP")))
        if not ok:
            print(f"\nbasalt chaos: run directory kept in {c.run_dir}")
    if stopped.returncode != 0:
        pytest.fail("dev-cluster stop failed:\n" + stopped.stdout
                    + stopped.stderr, pytrace=False)
    if reports:
        pytest.fail("sanitizer reports in service logs:\n\n"
                    + "\n\n".join(reports), pytrace=False)


@pytest.fixture
def workload(cluster: ChaosCluster) -> Iterator[Workload]:
    w = Workload(cluster, threads=4, rate=float(
        os.environ.get("CHAOS_RATE", "16")), client_timeout=15.0)
    w.setup_users(3)
    yield w
    w.stop()
