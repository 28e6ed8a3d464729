"""Which provider a base URL points at: `gen_ai.provider.name`, `server.address`, `server.port`.

The OpenAI SDK talks to many services; the official instrumentation calls all of them `openai`, which
files Groq or a local vLLM under OpenAI's costs. We read the host instead. Unknown hosts get
`openai_compatible` (a custom value, as the spec allows); `LLMLENS_PROVIDER_MAP` names them.
"""

from __future__ import annotations

from collections.abc import Mapping

UNKNOWN_OPENAI_COMPATIBLE = "openai_compatible"

# Host suffix -> gen_ai.provider.name (spec values where the spec has one).
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".models.ai.azure.com", "azure.ai.inference"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.moonshot.ai", "moonshot_ai"),
    ("api.moonshot.cn", "moonshot_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.anthropic.com", "anthropic"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
)
_OLLAMA_PORT = 11434


def provider_for(host: str | None, port: int | None, overrides: Mapping[str, str] | None = None) -> str:
    """`gen_ai.provider.name` for a server, e.g. `provider_for("api.groq.com", 443) == "groq"`."""
    return known_provider(host, port, overrides) or UNKNOWN_OPENAI_COMPATIBLE


def known_provider(
    host: str | None, port: int | None, overrides: Mapping[str, str] | None = None
) -> str | None:
    """The provider of a server we recognise (or the user named), else None: SDKs that speak one
    provider's API (anthropic) fall back to that provider rather than to `openai_compatible`."""
    host = (host or "").lower()
    if overrides:
        named = overrides.get(f"{host}:{port}") or overrides.get(host)
        if named:
            return named
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return provider
    if port == _OLLAMA_PORT:
        return "ollama"
    return None


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
