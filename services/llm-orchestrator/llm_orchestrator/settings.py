"""Configuration from the environment (pydantic-settings).

Providers come from LLM_PROVIDERS (JSON) and/or the shortcut variables
OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODELS and GEMINI_API_KEY /
GEMINI_MODELS; aliases from LLM_PROVIDERS' "aliases" and LLM_ALIASES.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderConfig(BaseModel):
    """One upstream: an OpenAI-compatible endpoint or Gemini's native API."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64,
                      pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["openai", "gemini"] = "openai"
    base_url: str = ""
    api_key: str = ""
    api_key_env: str = ""
    models: list[str] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        return v.rstrip("/")


class ProvidersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    providers: list[ProviderConfig] = Field(default_factory=list)
    aliases: dict[str, list[str]] = Field(default_factory=dict)


GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore",
                                      case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(default=8083, ge=1, le=65535)
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"

    llm_providers: str = ""
    llm_aliases: str = ""
    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_models: str = ""
    gemini_api_key: str = ""
    gemini_base_url: str = GEMINI_URL
    gemini_models: str = "gemini-2.0-flash"

    llm_retries: int = Field(default=2, ge=0, le=10)
    llm_backoff_ms: int = Field(default=200, ge=0, le=60000)
    llm_backoff_max_ms: int = Field(default=5000, ge=0, le=600000)
    llm_connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    llm_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    llm_keepalive_s: float = Field(default=15.0, gt=0, le=600)
    llm_max_tool_steps: int = Field(default=5, ge=1, le=50)

    llm_user_rpm: int = Field(default=60, ge=0)
    llm_user_rpd: int = Field(default=5000, ge=0)
    llm_user_tpm: int = Field(default=200000, ge=0)
    llm_user_tpd: int = Field(default=2000000, ge=0)

    mcp_url: str = ""
    platform_url: str = ""
    gateway_url: str = ""
    redis_url: str = ""
    internal_token: str = ""
    internal_token_file: str = ""
    jwt_public_key_file: str = ""
    jwt_issuer: str = "basalt"
    jwt_audience: str = "basalt"

    @field_validator("mcp_url", "platform_url", "gateway_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return v

    def token(self) -> str:
        if self.internal_token_file:
            return Path(self.internal_token_file).read_text().strip()
        return self.internal_token

    def public_key(self) -> str:
        if not self.jwt_public_key_file:
            return ""
        return Path(self.jwt_public_key_file).read_text()

    def providers(self) -> ProvidersFile:
        """Providers and aliases from every source, validated."""
        out = ProvidersFile()
        if self.llm_providers.strip():
            raw: Any = json.loads(self.llm_providers)
            if isinstance(raw, list):
                raw = {"providers": raw}
            out = ProvidersFile.model_validate(raw)
        names = {p.name for p in out.providers}
        if self.openai_api_key or self.openai_base_url:
            if "openai" not in names:
                out.providers.append(ProviderConfig(
                    name="openai", type="openai",
                    base_url=self.openai_base_url
                    or "https://api.openai.com/v1",
                    api_key=self.openai_api_key,
                    models=_csv(self.openai_models)))
        if self.gemini_api_key and "gemini" not in names:
            out.providers.append(ProviderConfig(
                name="gemini", type="gemini", base_url=self.gemini_base_url,
                api_key=self.gemini_api_key,
                models=_csv(self.gemini_models)))
        if self.llm_aliases.strip():
            extra = json.loads(self.llm_aliases)
            if not isinstance(extra, dict):
                raise ValueError("LLM_ALIASES must be a JSON object")
            out.aliases.update(ProvidersFile.model_validate(
                {"aliases": extra}).aliases)
        seen: set[str] = set()
        for p in out.providers:
            if p.name in seen:
                raise ValueError(f"provider {p.name!r} given twice")
            seen.add(p.name)
            if p.type == "openai" and not p.base_url:
                raise ValueError(f"provider {p.name!r} needs base_url")
            if p.type == "gemini" and not p.base_url:
                p.base_url = GEMINI_URL
        for alias, targets in out.aliases.items():
            for t in targets:
                prov = t.split("/", 1)[0]
                if "/" not in t or prov not in seen:
                    raise ValueError(
                        f"alias {alias!r}: target {t!r} is not "
                        "<provider>/<model> of a configured provider")
        return out


def _csv(v: str) -> list[str]:
    return [x.strip() for x in v.split(",") if x.strip()]
