"""pytest entry: the fixtures live in mcp_support.py (a unique module name,
so this suite and the llm-orchestrator suite can run in one session)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcp_support import platform, server  # noqa: F401
