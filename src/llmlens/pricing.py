"""Cost of LLM calls in USD, from the price data that ships inside the installed `genai-prices`.

Nothing here touches the network: the prices are the `genai_prices.data` module of the installed
package (we never start its `UpdatePrices` auto-update, and we read a snapshot of our own, so an
update started by someone else does not change our numbers either). Importing genai-prices takes
~25 ms after `import openai` and ~130 ms in a bare process (seconds with a cold bytecode cache), so it
is loaded in a background thread started by `instrument()`; a call that ends before the data is loaded
is not priced and is counted as unpriced with the reason `prices_loading`. `ready(timeout)` waits.

After the first call of a (provider, model), a price is a dict lookup and a few float operations:
`PriceBook` memoises genai-prices' model matching and compiles each model's prices to floats.

Example:
    >>> from llmlens import pricing
    >>> book = pricing.PriceBook()
    >>> pricing.ready(10)
    True
    >>> book.cost("openai", "gpt-4o-mini-2024-07-18", pricing.TokenUsage(1000, 200, cache_read_tokens=400))
    Cost(amount=0.00024, currency='USD', price_source='genai-prices 0.2.3', priced_model='gpt-4o-mini')
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from llmlens import semconv
from llmlens.settings import SettingsError

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

    from llmlens.core.invocation import Invocation

_log = logging.getLogger("llmlens")
_time = time.time
_NEVER = math.inf  # `expires` of a price that does not change with time (compared with `is`: cheap)

CURRENCY = "USD"
SOURCE_OVERRIDE = "override"
SOURCE_FREE = "free"

# Why a call has no cost: the `llmlens.cost.unpriced_reason` attribute of `llmlens.cost.unpriced`.
PRICES_LOADING = "prices_loading"  # the call ended before the price data was loaded
PRICES_UNAVAILABLE = "prices_unavailable"  # genai-prices could not be imported
NO_USAGE = "no_usage"  # the response reported no token counts (e.g. a stream without usage)
UNKNOWN_PROVIDER = "unknown_provider"  # no price list for this gen_ai.provider.name (openai_compatible)
UNKNOWN_MODEL = "unknown_model"  # the provider's price list has no such model
UNSUPPORTED_UNITS = "unsupported_units"  # the model is priced by characters, seconds, ..., not tokens
# A reported count was not a token count (llmlens.usage.invalid): a price from the rest would be wrong.
INVALID_USAGE = "invalid_usage"

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
# Local runtimes: no bill per token, so the cost is 0 (an override still wins).
FREE_PROVIDERS = frozenset({"ollama"})

_MEMO_LIMIT = 4096  # (provider, model) pairs remembered; past it the memo starts again
_SERIES_LIMIT = 2000  # attribute sets per cost metric, the SDK's default cardinality limit
_PRICE_KEYS = ("input", "output", "cache_read", "cache_write")


# --- usage and results ----------------------------------------------------------------------------


class UsageLike(Protocol):
    """Token counts as our spans have them (an `Invocation` is one).

    `input_tokens` includes cached tokens (read and written) and `output_tokens` includes reasoning
    tokens, for every provider: provider modules add Anthropic's separate cache counts to the input and
    Gemini's thoughts to the output before the span is written.
    """

    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def cache_read_tokens(self) -> int | None: ...
    @property
    def cache_creation_tokens(self) -> int | None: ...
    @property
    def reasoning_tokens(self) -> int | None: ...


class TokenUsage(NamedTuple):
    """Token counts of one call; see `UsageLike` for what each includes."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None  # cache writes
    reasoning_tokens: int | None = None


class Cost(NamedTuple):
    """The cost of one call."""

    amount: float
    currency: str
    price_source: str  # "genai-prices <version>", "override" or "free"
    priced_model: str  # the price entry used, e.g. "gpt-4o-mini" for "gpt-4o-mini-2024-07-18"


@dataclass(frozen=True)
class TokenPrices:
    """A user's prices, in USD per million tokens. Cache prices default to the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


# --- the compiled price of one model ----------------------------------------------------------------


class _Rates:
    """One model's prices as floats (USD per million tokens; `request` in USD per call).

    Cache and reasoning rates are always set: a model without a cache-read price pays the input price
    for cached tokens, exactly as genai-prices charges them, so the arithmetic has no branches.
    """

    __slots__ = ("cache_read", "cache_write", "expires", "input", "model", "output", "reasoning",
                 "request", "source", "tiers")  # fmt: skip

    def __init__(
        self,
        input: float,
        output: float,
        cache_read: float,
        cache_write: float,
        reasoning: float,
        request: float = 0.0,
        source: str = SOURCE_OVERRIDE,
        model: str = "",
    ) -> None:
        self.input = input
        self.output = output
        self.cache_read = cache_read
        self.cache_write = cache_write
        self.reasoning = reasoning
        self.request = request
        self.source = source
        self.model = model
        # (start, rates) from the highest start down: all tokens pay a tier's rates once the input
        # exceeds its start (the "cliff" model of genai-prices, Anthropic and Google).
        self.tiers: tuple[tuple[int, _Rates], ...] = ()
        self.expires = _NEVER  # epoch seconds when a dated or time-of-day price may change

    def amount(self, usage: UsageLike) -> float:
        """USD for `usage`. Cached tokens pay the cache price and not also the input price."""
        input_tokens = usage.input_tokens or 0
        rates = self
        for start, tier in self.tiers:
            if input_tokens > start:
                rates = tier
                break
        cache_read = usage.cache_read_tokens or 0
        cache_write = usage.cache_creation_tokens or 0
        reasoning = usage.reasoning_tokens or 0
        plain_input = input_tokens - cache_read - cache_write
        plain_output = (usage.output_tokens or 0) - reasoning
        per_million = (
            (plain_input if plain_input > 0 else 0) * rates.input
            + cache_read * rates.cache_read
            + cache_write * rates.cache_write
            + (plain_output if plain_output > 0 else 0) * rates.output
            + reasoning * rates.reasoning
        )
        return per_million / 1_000_000 + rates.request


def _override_rates(prices: TokenPrices) -> _Rates:
    return _Rates(
        prices.input,
        prices.output,
        prices.input if prices.cache_read is None else prices.cache_read,
        prices.input if prices.cache_write is None else prices.cache_write,
        prices.output,
    )


_FREE = _Rates(0.0, 0.0, 0.0, 0.0, 0.0, source=SOURCE_FREE)


# --- the genai-prices data, loaded once per process in the background -------------------------------


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


def load_seconds() -> float | None:
    """How long loading the price data took, or None while it is loading."""
    return _DATA.load_seconds


# --- the price book ---------------------------------------------------------------------------------


class PriceBook:
    """Prices calls: the user's overrides first, then genai-prices. Memoised per (provider, model).

    Example:
        >>> book = PriceBook({"openai_compatible/my-llama*": TokenPrices(input=0.2, output=0.6)})
        >>> book.cost("openai_compatible", "my-llama-70b", TokenUsage(1_000_000, 0)).amount
        0.2
    """

    def __init__(self, overrides: Mapping[str, TokenPrices] | None = None) -> None:
        self._exact: dict[str, TokenPrices] = {}
        self._patterns: list[tuple[str, TokenPrices]] = []
        for key, prices in (overrides or {}).items():
            key = key.lower()
            if any(c in key for c in "*?["):
                self._patterns.append((key, prices))
            else:
                self._exact[key] = prices
        # The most specific pattern wins: the one with the most literal characters (ties: first given).
        self._patterns.sort(key=lambda item: -_literal_length(item[0]))
        self._memo: dict[tuple[str, str | None, str | None, str | None], _Rates | str] = {}
        load_in_background()

    def cost(
        self,
        provider: str,
        model: str | None,
        usage: UsageLike,
        *,
        request_model: str | None = None,
        service_tier: str | None = None,
    ) -> Cost | None:
        """The cost of a call, or None when it cannot be priced (`unpriced_reason` says why).

        `model` is the response model when the response named one, else the request model; the
        `request_model` is tried when `model` is unknown. `service_tier` selects a price variant
        (OpenAI's `flex`, `priority`) when genai-prices has one.
        """
        rates = self.rates(provider, model, request_model, service_tier)
        if isinstance(rates, str) or (usage.input_tokens is None and usage.output_tokens is None):
            return None
        return Cost(rates.amount(usage), CURRENCY, rates.source, rates.model)

    def unpriced_reason(
        self, provider: str, model: str | None, usage: UsageLike, *, request_model: str | None = None
    ) -> str | None:
        """Why `cost()` returns None for this call (one of the reason constants), or None if it doesn't."""
        if usage.input_tokens is None and usage.output_tokens is None:
            return NO_USAGE
        rates = self.rates(provider, model, request_model)
        return rates if isinstance(rates, str) else None

    def rates(
        self,
        provider: str,
        model: str | None,
        request_model: str | None = None,
        service_tier: str | None = None,
    ) -> _Rates | str:
        """The compiled prices for a call, or the reason it has none. ~0.2 µs once memoised."""
        key = (provider, model, request_model, service_tier)
        rates = self._memo.get(key)
        if rates is None or (
            type(rates) is _Rates and rates.expires is not _NEVER and rates.expires <= _time()
        ):
            rates = self._resolve(key)
        return rates

    def price_call(self, inv: Invocation, attributes: dict[str, Any], failed: bool) -> float | str | None:
        """Put the cost of a finished call on its span attributes.

        Returns the amount in USD, the reason the call is unpriced, or None when it is neither (a
        failed request that returned nothing is not billed, so it is not counted as unpriced).
        """
        if semconv.LLMLENS_USAGE_INVALID in attributes:
            return INVALID_USAGE
        if inv.input_tokens is None and inv.output_tokens is None:
            return None if failed and not inv.chunk_times else NO_USAGE
        request_model = inv.request_model
        key = (
            inv.provider,
            inv.response_model or request_model,
            request_model,
            inv.response_attributes.get(semconv.OPENAI_RESPONSE_SERVICE_TIER),
        )
        rates = self._memo.get(key)  # rates(), inlined: this runs on every call
        if rates is None or (
            type(rates) is _Rates and rates.expires is not _NEVER and rates.expires <= _time()
        ):
            rates = self._resolve(key)
        if type(rates) is not _Rates:
            return rates  # the reason
        amount = rates.amount(inv)
        attributes[semconv.USAGE_COST_AMOUNT] = amount
        attributes[semconv.USAGE_COST_CURRENCY] = CURRENCY
        attributes[semconv.USAGE_COST_SOURCE] = semconv.COST_SOURCE_LOCAL
        attributes[semconv.LLMLENS_COST_PRICE_SOURCE] = rates.source
        return amount

    # --- resolving (once per key) -------------------------------------------------------------------

    def _resolve(self, key: tuple[str, str | None, str | None, str | None]) -> _Rates | str:
        provider, model, request_model, service_tier = key
        names = [name for name in (model, request_model) if name]
        if len(names) == 2 and names[0] == names[1]:
            del names[1]
        result = self._override(provider, names)
        if result is None:
            if provider in FREE_PROVIDERS:
                result = _FREE
            elif GENAI_PRICES_PROVIDERS.get(provider, provider) is None:
                result = UNKNOWN_PROVIDER
            elif not names:
                result = UNKNOWN_MODEL
            elif not _DATA.loaded.is_set():
                return PRICES_LOADING  # not memoised: priced once the data is there
            else:
                result = self._from_genai_prices(provider, names, service_tier)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = result
        return result

    def _override(self, provider: str, names: list[str]) -> _Rates | None:
        if not self._exact and not self._patterns:
            return None
        for name in names:
            wanted = f"{provider}/{name}".lower()
            prices = self._exact.get(wanted)
            if prices is None:
                prices = next(
                    (p for pattern, p in self._patterns if fnmatch.fnmatchcase(wanted, pattern)), None
                )
            if prices is not None:
                rates = _override_rates(prices)
                rates.model = name
                return rates
        return None

    def _from_genai_prices(self, provider: str, names: list[str], service_tier: str | None) -> _Rates | str:
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


def _literal_length(pattern: str) -> int:
    return sum(1 for c in pattern if c not in "*?[]")


# --- compiling genai-prices' ModelPrice --------------------------------------------------------------

# genai-prices price keys we can feed from token counts (USD per million, except requests per 1000).
_INPUT = "input_mtok"
_OUTPUT = "output_mtok"
_CACHE_READ = "cache_read_mtok"
_CACHE_WRITE = "cache_write_mtok"
_REASONING = "output_reasoning_mtok"
_REQUESTS = "requests_kcount"
_TOKEN_KEYS = (_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING, _REQUESTS)


def _compile(model_info: Any, price_list: Any, service_tier: str | None, source: str) -> _Rates | str:
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

    def at(threshold: int | None) -> _Rates:
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
        return _Rates(
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
    changes = [_NEVER]
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


# --- user overrides: LLMLENS_PRICES and instrument(prices=...) ---------------------------------------


def load_price_table(source: Any, where: str) -> dict[str, TokenPrices]:
    """Read overrides from a mapping or a JSON/TOML file path; one-line `SettingsError` if invalid.

    The table maps `provider/model` (fnmatch patterns allowed, e.g. `openai_compatible/llama-*`) to
    USD per million tokens: `{"input": 0.2, "output": 0.6, "cache_read": 0.05, "cache_write": 0.25}`.

    Example:
        >>> load_price_table({"ollama/*": {"input": 0, "output": 0}}, "prices")
        {'ollama/*': TokenPrices(input=0.0, output=0.0, cache_read=None, cache_write=None)}
    """
    if isinstance(source, Mapping):
        table: Any = source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        where = f"{where}={path!r}"
        table = _read_price_file(path, where)
    else:
        raise SettingsError(f"{where}={source!r} is not valid; accepted values: {_TABLE} or a file path")
    if not isinstance(table, Mapping):
        raise SettingsError(f"{where} holds a {type(table).__name__}; accepted values: {_TABLE}")
    return {_check_key(key, where): _check_prices(key, value, where) for key, value in table.items()}


_TABLE = "a table of 'provider/model' -> prices"
_ENTRY = "input and output (required), cache_read, cache_write in USD per million tokens"


def _read_price_file(path: str, where: str) -> Any:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        reason = error.strerror or error
        raise SettingsError(f"{where}: cannot read the file ({reason}); accepted values: a JSON or TOML file")
    if path.lower().endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                accepted = "a JSON file (TOML needs Python 3.11+ or tomli)"
                raise SettingsError(f"{where}: cannot read TOML; accepted values: {accepted}") from None
        try:
            return tomllib.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise SettingsError(f"{where} is not valid TOML ({_one_line(error)}); accepted values: {_TABLE}")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise SettingsError(f"{where} is not valid JSON ({_one_line(error)}); accepted values: {_TABLE}")


def _check_key(key: Any, where: str) -> str:
    provider, sep, model = key.partition("/") if isinstance(key, str) else ("", "", "")
    if not sep or not provider.strip() or not model.strip():
        accepted = "keys 'provider/model', e.g. 'openai/gpt-4o*'"
        raise SettingsError(f"{where}: key {key!r} is not valid; accepted values: {accepted}")
    return key.strip()


def _check_prices(key: str, value: Any, where: str) -> TokenPrices:
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where}: {key!r} is not a table; accepted values: {_ENTRY}")
    unknown = sorted(set(value) - set(_PRICE_KEYS))
    if unknown:
        raise SettingsError(f"{where}: {key!r} has unknown fields {unknown}; accepted values: {_ENTRY}")
    missing = [name for name in ("input", "output") if name not in value]
    if missing:
        raise SettingsError(f"{where}: {key!r} misses {' and '.join(missing)}; accepted values: {_ENTRY}")
    numbers: dict[str, float] = {}
    for name in _PRICE_KEYS:
        if name not in value:
            continue
        number = value[name]
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < math.inf:
            accepted = "a number >= 0 (USD per million tokens)"
            raise SettingsError(
                f"{where}: {key!r} {name}={number!r} is not valid; accepted values: {accepted}"
            )
        numbers[name] = float(number)
    return TokenPrices(**numbers)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# --- the cost metrics ----------------------------------------------------------------------------------


class CostMeter:
    """`llmlens.cost` (USD) and `llmlens.cost.unpriced` (calls), both monotonic counters.

    The SDK's synchronous `Counter.add` costs ~8 µs a call; we add to in-process totals instead (~1 µs)
    and report them through observable counters, which export the same cumulative sums. One CostMeter
    per meter, so instrumenting again with the same meter provider keeps adding to the same series.

    Example:
        >>> meter_costs = CostMeter.for_meter(meter)
        >>> meter_costs.add(0.0012, {"gen_ai.provider.name": "openai"})
    """

    _by_meter: Any = None  # WeakKeyDictionary[Meter, CostMeter], created on first use

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._cost: dict[tuple[tuple[str, Any], ...], float] = {}
        self._unpriced: dict[tuple[tuple[str, Any], ...], int] = {}
        meter.create_observable_counter(
            semconv.METRIC_LLMLENS_COST,
            callbacks=[self._observe_cost],
            unit="USD",
            description="Cost of GenAI operations, computed locally from token usage and prices",
        )
        meter.create_observable_counter(
            semconv.METRIC_LLMLENS_COST_UNPRICED,
            callbacks=[self._observe_unpriced],
            unit="{call}",
            description="GenAI operations that could not be priced, by reason",
        )

    @classmethod
    def for_meter(cls, meter: Meter) -> CostMeter:
        # An observable counter registered twice on one meter keeps its first callbacks, so a second
        # CostMeter there would never be read. (The API's proxy meter, used before a global provider is
        # set, is a new object per get_meter(): re-instrumenting before that still splits the totals.)
        import weakref

        if cls._by_meter is None:
            cls._by_meter = weakref.WeakKeyDictionary()
        try:
            found: CostMeter | None = cls._by_meter.get(meter)
        except TypeError:  # a meter that cannot be weakly referenced
            return cls(meter)
        if found is None:
            found = cls._by_meter[meter] = cls(meter)
        return found

    def add(
        self, result: float | str, attributes: dict[str, Any], key: tuple[Any, ...] | None = None
    ) -> None:
        """Add a priced call's amount, or count an unpriced call under its reason.

        `key`: `tuple(attributes.items())`, when the caller keeps it with the attributes.
        """
        if type(result) is str:
            totals: dict[tuple[tuple[str, Any], ...], Any] = self._unpriced
            key = (*(key or attributes.items()), (semconv.LLMLENS_COST_UNPRICED_REASON, result))
            result = 1
        else:
            totals = self._cost
            if key is None:
                key = tuple(attributes.items())
        with self._lock:
            total = totals.get(key)
            if total is not None:
                totals[key] = total + result
            elif len(totals) < _SERIES_LIMIT:
                totals[key] = result
            else:  # past the cardinality limit, as the SDK does
                totals[_OVERFLOW] = totals.get(_OVERFLOW, 0) + result

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(self._cost)

    def _observe_unpriced(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(self._unpriced)

    def _observe(self, totals: Mapping[tuple[tuple[str, Any], ...], float]) -> list[Observation]:
        from opentelemetry.metrics import Observation

        with self._lock:
            items = list(totals.items())
        return [Observation(value, dict(key)) for key, value in items]


_OVERFLOW = (("otel.metric.overflow", True),)
