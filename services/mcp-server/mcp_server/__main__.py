"""Entry point: `python -m mcp_server` (validates settings, runs uvicorn)."""

from __future__ import annotations

import sys

import uvicorn
from basalt_common import logs
from pydantic import ValidationError

from .settings import Settings


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "?"
        print(f"mcp-server: bad setting {name}: {err['msg']}",
              file=sys.stderr)
        sys.exit(2)
    logs.setup("mcp-server", settings.log_level)
    from .app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False, lifespan="on",
                timeout_graceful_shutdown=20)


if __name__ == "__main__":
    main()
