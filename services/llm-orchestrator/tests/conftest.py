"""pytest entry: the fixtures live in llm_support.py (a unique module name,
so this suite and the mcp-server suite can run in one pytest session)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_support import (  # noqa: F401
    fake,
    keys,
    mcp,
    orch,
    platform,
    redis_url,
    service_factory,
)
