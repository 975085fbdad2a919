#!/usr/bin/env python3
"""Proves that LeakSanitizer over the e2e suite can fail: every C service
of a dev-cluster (ASan binaries) runs with a preloaded library that leaks
one 4242-byte block at start; after `dev-cluster stop` (SIGTERM) each
service log must hold LeakSanitizer's report of it, so the e2e teardown's
marker grep (tests/e2e/conftest.py SANITIZER_MARKERS) would fail the run.
A control run without the preload must show no report.

  .venv/bin/python tests/soak/lsan_selftest.py      (about 30 s)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "chaos"))

from chaos_harness import C_SERVICES, ChaosCluster

LEAK_C = r"""
#include <stdlib.h>
#include <string.h>
void *volatile lsan_selftest_sink;
__attribute__((constructor)) static void lsan_selftest_leak(void)
{
    char *p = malloc(4242);
    memset(p, 'x', 4242);
    lsan_selftest_sink = p;
    lsan_selftest_sink = NULL;
}
"""


def libasan(binary: Path) -> str:
    out = subprocess.run(["ldd", str(binary)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split("(")[0].strip()
    raise RuntimeError(f"{binary} is not linked with libasan")


def run(preload: str | None) -> dict[str, str]:
    c = ChaosCluster()
    if preload:
        for s in C_SERVICES:
            with (c.run_dir / "env" / f"{s}.env").open("a") as f:
                f.write(f"LD_PRELOAD={preload}\n")
    try:
        c.must("start")
    finally:
        c.stop()
    logs = {s: (c.run_dir / "logs" / f"{s}.log").read_text(errors="replace")
            for s in C_SERVICES}
    c.cleanup(keep=False)
    return logs


def main() -> int:
    # the markers the e2e teardown greps for, from its own conftest
    spec = importlib.util.spec_from_file_location(
        "e2e_conftest", HERE.parent / "e2e" / "conftest.py")
    assert spec is not None and spec.loader is not None
    e2e = importlib.util.module_from_spec(spec)
    sys.modules["e2e_conftest"] = e2e
    spec.loader.exec_module(e2e)
    markers = e2e.SANITIZER_MARKERS

    tmp = Path(tempfile.mkdtemp(prefix="basalt-lsan-"))
    so = tmp / "leak.so"
    src = tmp / "leak.c"
    src.write_text(LEAK_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O0", "-o", str(so),
                    str(src)], check=True)
    probe = ChaosCluster()
    asan = libasan(probe.bin_dir / "gateway")
    probe.stop()
    probe.cleanup(keep=False)

    ok = True
    leaky = run(f"{asan} {so}")
    for s, text in leaky.items():
        caught = (any(m in text for m in markers)
                  and "Direct leak of 4242 byte(s)" in text)
        print(f"{s}: injected leak {'reported' if caught else 'MISSED'}")
        ok &= caught
    clean = run(None)
    for s, text in clean.items():
        dirty = any(m in text for m in markers)
        print(f"{s}: control run {'HAS REPORTS' if dirty else 'clean'}")
        ok &= not dirty
    shutil.rmtree(tmp, ignore_errors=True)
    print("lsan self-test " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
