"""Configuration from the environment (pydantic-settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the MCP server; see README.md for meanings."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore",
                                      case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(default=8084, ge=1, le=65535)
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    gateway_url: str = "http://127.0.0.1:8080"
    # Host header values the SDK's DNS-rebinding protection lets through
    # (comma list; "name:*" allows any port). The gateway connects to
    # 127.0.0.1:<port>, so loopback is always allowed.
    mcp_allowed_hosts: str = ""
    # Origin header values allowed (browser clients reach us via the
    # gateway, so the gateway's public origin belongs here).
    mcp_allowed_origins: str = ""
    platform_timeout_s: float = Field(default=30.0, gt=0, le=600)
    sample_rows: int = Field(default=10, ge=1, le=100)

    @field_validator("gateway_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    def allowed_hosts(self) -> list[str]:
        # Loopback (dev cluster, tests) and the service name the gateway
        # and the orchestrator dial under compose / Kubernetes.
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "mcp-server",
                 "mcp-server:*"]
        hosts += [h.strip() for h in self.mcp_allowed_hosts.split(",")
                  if h.strip()]
        gw = self.gateway_url.split("://", 1)[1].split("/", 1)[0]
        if gw not in hosts:
            hosts.append(gw)
        return hosts

    def allowed_origins(self) -> list[str]:
        origins = ["http://127.0.0.1:*", "http://localhost:*",
                   "http://[::1]:*", self.gateway_url]
        origins += [o.strip() for o in self.mcp_allowed_origins.split(",")
                    if o.strip()]
        return origins
