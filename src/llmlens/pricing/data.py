"""The genai-prices price data: loaded once per process in a background thread, looked up by name.

Nothing here touches the network: the prices are the `genai_prices.data` module of the installed
package (we never start its `UpdatePrices` auto-update, and we read a snapshot of our own, so an
update started by someone else does not change our numbers either).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from llmlens.pricing.rates import NEVER, Rates
from llmlens.pricing.values import PRICES_UNAVAILABLE, UNKNOWN_MODEL, UNKNOWN_PROVIDER, UNSUPPORTED_UNITS

_log = logging.getLogger("llmlens")

# gen_ai.provider.name -> genai-prices provider id. A name not listed is looked up in genai-prices as
# it is (its own provider matching), so `cerebras` or `moonshotai` from a provider map still work.
GENAI_PRICES_PROVIDERS: Mapping[str, str | None] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    # Any server speaking the OpenAI API: its owner sets the price, so only an override can price it.
    "openai_compatible": None,
}


class _PriceData:
    """The loaded genai-prices snapshot, shared by every PriceBook of the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = threading.Event()
        self.thread: threading.Thread | None = None
        self.snapshot: Any = None  # genai_prices.data_snapshot.DataSnapshot, or None until loaded
        self.source = ""  # "genai-prices <version>"
        self.failed = False
        self.load_seconds: float | None = None

    def start(self) -> None:
        with self.lock:
            if self.thread is not None or self.loaded.is_set():
                return
            # genai_prices imports httpx2, and openai 2 reads sys.modules["httpx2"] without the import
            # lock: a half-imported module there breaks `openai.OpenAI()`. Import it here, first.
            try:
                import httpx2  # noqa: F401
            except ImportError:
                pass
            self.thread = threading.Thread(target=self._load, name="llmlens-prices", daemon=True)
            self.thread.start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            # `import genai_prices` also imports httpx2 (its auto-update), but nothing fetches unless
            # `UpdatePrices` is started, which we never do. Our own DataSnapshot of the bundled data keeps
            # our prices those of the installed version even if the application starts an update.
            import genai_prices
            from genai_prices.data import providers
            from genai_prices.data_snapshot import DataSnapshot

            self.snapshot = DataSnapshot(providers=providers, from_auto_update=False)
            self.source = f"genai-prices {genai_prices.__version__}"
        except ImportError as error:  # not installed (it needs Python 3.11+)
            self.failed = True
            _log.warning("llmlens: genai-prices is not available (%s); only price overrides apply", error)
        except Exception:
            self.failed = True
            _log.warning(
                "llmlens: genai-prices could not be loaded; only price overrides apply", exc_info=True
            )
        finally:
            self.load_seconds = time.perf_counter() - started
            self.loaded.set()

    def before_fork(self) -> None:
        # A fork in the middle of the load would leave the child with half-imported modules whose
        # import locks belong to a thread it does not have: let the load (~0.1 s, once) finish first.
        if self.thread is not None:
            self.loaded.wait(5)

    def after_fork_in_child(self) -> None:
        # The loading thread does not survive a fork, and its locks may be held: start afresh.
        if not self.loaded.is_set():
            self.lock = threading.Lock()
            self.loaded = threading.Event()
            self.thread = None
            self.start()


_DATA = _PriceData()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=lambda: _DATA.before_fork(), after_in_child=lambda: _DATA.after_fork_in_child()
    )


def load_in_background() -> None:
    """Start loading the price data if nobody has (idempotent; `instrument()` calls it)."""
    _DATA.start()


def ready(timeout: float | None = None) -> bool:
    """Wait up to `timeout` seconds for the price data; True once calls can be priced from it.

    Example:
        >>> pricing.ready(10)  # in a test or a demo, before the first call
        True
    """
    _DATA.start()
    return _DATA.loaded.wait(timeout) and not _DATA.failed


def loaded() -> bool:
    """True once the load has ended (whether or not it succeeded): a lookup's answer is then final."""
    return _DATA.loaded.is_set()


def load_seconds() -> float | None:
    """How long loading the price data took, or None while it is loading."""
    return _DATA.load_seconds


def lookup(provider: str, names: list[str], service_tier: str | None) -> Rates | str:
    """The compiled genai-prices price of the first of `names` the provider's list has, or the reason
    there is none. Call once the data is `loaded()`; ~0.1-0.4 ms (the caller memoises it)."""
    snapshot = _DATA.snapshot
    if snapshot is None:
        return PRICES_UNAVAILABLE
    try:
        price_list = snapshot.find_provider(None, GENAI_PRICES_PROVIDERS.get(provider, provider), None)
    except LookupError:
        return UNKNOWN_PROVIDER
    for name in names:
        try:
            _, model_info = snapshot.find_provider_model(name, price_list, None, None)
        except LookupError:
            continue
        try:
            return _compile(model_info, price_list, service_tier, _DATA.source)
        except Exception:  # a price shape we do not understand: unpriced rather than wrong
            _log.debug("llmlens: cannot use the price of %s/%s", provider, name, exc_info=True)
            return UNSUPPORTED_UNITS
    return UNKNOWN_MODEL


# --- compiling genai-prices' ModelPrice --------------------------------------------------------------

# genai-prices price keys we can feed from token counts (USD per million, except requests per 1000).
_INPUT = "input_mtok"
_OUTPUT = "output_mtok"
_CACHE_READ = "cache_read_mtok"
_CACHE_WRITE = "cache_write_mtok"
_REASONING = "output_reasoning_mtok"
_REQUESTS = "requests_kcount"
_TOKEN_KEYS = (_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING, _REQUESTS)


def _compile(model_info: Any, price_list: Any, service_tier: str | None, source: str) -> Rates | str:
    now = datetime.now(timezone.utc)
    # genai-prices applies a request's price variant (service tier) only to the provider's own models.
    context = None
    if service_tier and any(m is model_info for m in price_list.models):
        context = {"service_tier": service_tier}
    model_price = model_info.get_prices(now, context)
    values = {k: v for k, v in vars(model_price).items() if v is not None and not k.startswith("_")}
    used = {k: values[k] for k in _TOKEN_KEYS if k in values}
    if not used and values:
        return UNSUPPORTED_UNITS  # priced by characters, audio hours, pages, ... only
    starts = sorted(
        {tier.start for value in used.values() if hasattr(value, "tiers") for tier in value.tiers}
    )

    def at(threshold: int | None) -> Rates:
        def price(key: str) -> float | None:
            value = used.get(key)
            if value is None:
                return None
            if hasattr(value, "tiers"):
                chosen = value.base
                if threshold is not None:
                    for tier in value.tiers:  # sorted by start
                        if tier.start <= threshold:
                            chosen = tier.price
                return float(chosen)
            return float(value)

        input_price = price(_INPUT) or 0.0
        output_price = price(_OUTPUT) or 0.0
        cache_read = price(_CACHE_READ)
        cache_write = price(_CACHE_WRITE)
        reasoning = price(_REASONING)
        requests = price(_REQUESTS)
        return Rates(
            input_price,
            output_price,
            input_price if cache_read is None else cache_read,
            input_price if cache_write is None else cache_write,
            output_price if reasoning is None else reasoning,
            0.0 if requests is None else requests / 1000,
            source,
            model_info.id,
        )

    rates = at(None)
    rates.tiers = tuple((start, at(start)) for start in reversed(starts))
    rates.expires = _next_price_change(model_info, now)
    return rates


def _next_price_change(model_info: Any, now: datetime) -> float:
    """When a dated price starts or a time-of-day price (DeepSeek off-peak) begins or ends."""
    constraints = [c.constraint for c in model_info.prices] if isinstance(model_info.prices, list) else []
    constraints += [v.constraint for v in model_info.price_variants or ()]
    changes = [NEVER]
    for constraint in constraints:
        start_date = getattr(constraint, "start_date", None)
        if isinstance(start_date, date) and start_date > now.date():
            changes.append(
                datetime(start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc).timestamp()
            )
        for moment in (getattr(constraint, "start_time", None), getattr(constraint, "end_time", None)):
            if moment is not None:
                when = datetime.combine(now.date(), moment)
                when = (
                    when.replace(tzinfo=timezone.utc)
                    if when.tzinfo is None
                    else when.astimezone(timezone.utc)
                )
                while when <= now:
                    when += timedelta(days=1)
                changes.append(when.timestamp())
    return min(changes)
