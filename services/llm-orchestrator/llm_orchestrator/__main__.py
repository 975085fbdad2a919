"""Entry point: `python -m llm_orchestrator` (checks settings, runs
uvicorn)."""

from __future__ import annotations

import json
import sys

import uvicorn
from basalt_common import logs
from pydantic import ValidationError

from .settings import Settings


def main() -> None:
    try:
        settings = Settings()
        settings.providers()
        settings.token()
        settings.public_key()
    except ValidationError as e:
        first = e.errors()[0]
        loc = first["loc"]
        name = ".".join(str(p) for p in loc) if loc else "?"
        if name.split(".")[0] in Settings.model_fields:
            name = name.upper()
        else:
            name = f"LLM_PROVIDERS ({name})"
        print(f"llm-orchestrator: bad setting {name}: {first['msg']}",
              file=sys.stderr)
        sys.exit(2)
    except (ValueError, json.JSONDecodeError) as e:
        print(f"llm-orchestrator: bad setting LLM_PROVIDERS/LLM_ALIASES: {e}",
              file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print(f"llm-orchestrator: bad setting (unreadable file {e.filename}):"
              f" {e.strerror}", file=sys.stderr)
        sys.exit(2)
    logs.setup("llm-orchestrator", settings.log_level)
    from .app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False, lifespan="on",
                timeout_graceful_shutdown=20)


if __name__ == "__main__":
    main()
