"""Fixtures: a fake platform (fake_platform.py) and the MCP server started
through its real launcher (../run) on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
SERVICE = HERE.parent
sys.path.insert(0, str(HERE))

from fake_platform import FakePlatform  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def platform() -> Iterator[FakePlatform]:
    p = FakePlatform().start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def server(platform: FakePlatform, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("mcp") / "mcp-server.log"
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port),
               GATEWAY_URL=platform.url,
               MCP_ALLOWED_HOSTS="mcp.example.com",
               MCP_ALLOWED_ORIGINS="https://console.example.com")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(SERVICE / "run")], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            pytest.fail("mcp-server did not start:\n" + log.read_text())
        time.sleep(0.1)
    yield Server(url, port, proc, log)
    proc.terminate()
    proc.wait(20)
