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
from llmlens.pricing.values import (
    AMBIGUOUS_MODEL,
    COST_SOURCE_INFERRED,
    PRICES_UNAVAILABLE,
    UNKNOWN_MODEL,
    UNKNOWN_PROVIDER,
    UNSUPPORTED_UNITS,
)

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
        return _compiled(model_info, price_list, service_tier, snapshot.providers)
    return UNKNOWN_MODEL


def infer(names: list[str], service_tier: str | None) -> Rates | str:
    """The price of a call to a relay llmlens does not know (`openai_compatible`), from the model name
    alone, or the reason there is none. The first of `names` that one of these rules prices wins:

    1. `provider/model` where `provider` is a genai-prices provider id (LiteLLM's names): that list;
    2. the model's maker: the one provider whose genai-prices `model_match` claims the name (`gpt-*`
       and `o3*` OpenAI, `*claude*` Anthropic, `*gemini*` Google, ...), if its own list has the model;
    3. no maker: two or more price lists have the model and all give it the same prices, so the host
       behind the relay does not matter (`text-embedding-3-small`: OpenAI and Azure).

    Otherwise `ambiguous_model` (several makers claim the name, or it is the hosts' and they price it
    differently, or only one host lists it) or `unknown_model` (no list has it). The cost is marked
    `inferred_from_model`. Resolved once per name.
    """
    snapshot = _DATA.snapshot
    if snapshot is None:
        return PRICES_UNAVAILABLE
    reason = UNKNOWN_MODEL
    for name in names:
        found = _infer_one(name.lower(), snapshot.providers, service_tier)
        if isinstance(found, Rates):
            found.cost_source = COST_SOURCE_INFERRED
            found.source = f"{found.source} ({found.provider}/{found.model})"
            for _, tier in found.tiers:
                tier.cost_source, tier.source = found.cost_source, found.source
            return found
        if found == AMBIGUOUS_MODEL or reason == UNKNOWN_MODEL:
            reason = found
    return reason


def _infer_one(name: str, providers: list[Any], service_tier: str | None) -> Rates | str:
    prefix, slash, rest = name.partition("/")
    if slash and rest:
        by_id = next((p for p in providers if p.id == prefix), None)
        if by_id is not None:
            model_info = by_id.find_model(rest, all_providers=providers)
            if model_info is not None:
                return _compiled(model_info, by_id, service_tier, providers)
    makers = [p for p in providers if p.model_match is not None and p.model_match.is_match(name)]
    if len(makers) > 1:
        return AMBIGUOUS_MODEL
    if makers:
        model_info = makers[0].find_model(name)  # its own list only: no fallback to another's
        if model_info is not None:
            return _compiled(model_info, makers[0], service_tier, providers)
    # No maker (or its list lacks the model): priced only if every list that has the model agrees.
    priced: list[Rates] = []
    for price_list in providers:
        model_info = price_list.find_model(name)
        if model_info is not None:
            rates = _compiled(model_info, price_list, service_tier, providers)
            if isinstance(rates, Rates):
                priced.append(rates)
    if not priced:
        return UNKNOWN_MODEL
    first = priced[0]
    # One host's list alone does not say what the host behind the relay charges (a local vLLM serving
    # `qwen3-32b` is not OVHcloud): at least two lists must have the model, all at the same prices.
    if len(priced) > 1 and all(_same_prices(first, other) for other in priced[1:]):
        return first
    return AMBIGUOUS_MODEL


def _same_prices(a: Rates, b: Rates) -> bool:
    def prices(r: Rates) -> tuple[Any, ...]:
        own = (r.input, r.output, r.cache_read, r.cache_write, r.reasoning, r.request)
        return own + tuple((start, prices(tier)) for start, tier in r.tiers)

    return prices(a) == prices(b)


def _compiled(
    model_info: Any, price_list: Any, service_tier: str | None, providers: list[Any]
) -> Rates | str:
    try:
        rates = _compile(model_info, price_list, service_tier, _DATA.source)
    except Exception:  # a price shape we do not understand: unpriced rather than wrong
        _log.debug("llmlens: cannot use the price of %s/%s", price_list.id, model_info.id, exc_info=True)
        return UNSUPPORTED_UNITS
    if isinstance(rates, Rates):
        # The list that holds the entry: the provider's own, or one it falls back to (Azure -> OpenAI).
        holder = price_list.id
        if not any(m is model_info for m in price_list.models):
            holder = next((p.id for p in providers if any(m is model_info for m in p.models)), holder)
        rates.provider = holder
        for _, tier in rates.tiers:
            tier.provider = holder
    return rates


def model_ids(provider: str) -> list[str]:
    """The model ids of a provider's genai-prices list (with those of the lists it falls back to), for
    suggestions; every list's ids for `openai_compatible`. Empty before the data is loaded."""
    snapshot = _DATA.snapshot
    if snapshot is None:
        return []
    wanted = GENAI_PRICES_PROVIDERS.get(provider, provider)
    if wanted is None:
        lists = list(snapshot.providers)
    else:
        try:
            found = snapshot.find_provider(None, wanted, None)
        except LookupError:
            return []
        fallbacks = found.fallback_model_providers or ()
        lists = [found, *(p for p in snapshot.providers if p.id in fallbacks)]
    ids = [m.id for price_list in lists for m in price_list.models]
    return list(dict.fromkeys(ids))


def version() -> str:
    """The price source, `genai-prices <version>`, once loaded ("" before, or when it could not be loaded)."""
    return _DATA.source


def provider_id(provider: str) -> str | None:
    """The genai-prices provider id `gen_ai.provider.name` maps to (None: no list of its own)."""
    return GENAI_PRICES_PROVIDERS.get(provider, provider)


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
