"""The user's own prices: `LLMLENS_PRICES` and `instrument(prices=...)`, read and matched.

A price table maps `provider/model` (fnmatch patterns allowed, e.g. `openai_compatible/llama-*`) to USD
per million tokens. This module imports nothing from the rest of llmlens: a table it cannot use raises
`PriceTableError` (settings.py asks for its own `SettingsError` instead).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PRICE_KEYS = ("input", "output", "cache_read", "cache_write")
_TABLE = "a table of 'provider/model' -> prices"
_ENTRY = "input and output (required), cache_read, cache_write in USD per million tokens"


class PriceTableError(ValueError):
    """A price table llmlens cannot use. The message is one line, fit for a user."""


@dataclass(frozen=True)
class TokenPrices:
    """A user's prices, in USD per million tokens. Cache prices default to the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


class Overrides:
    """A price table, matched against `provider/model`: an exact key first, then the most specific
    pattern (the one with the most literal characters; ties: the first given).

    Example:
        >>> table = Overrides({"openai_compatible/my-llama*": TokenPrices(0.2, 0.6)})
        >>> table.find("openai_compatible", ["my-llama-70b"])
        ('my-llama-70b', TokenPrices(input=0.2, output=0.6, cache_read=None, cache_write=None))
    """

    def __init__(self, table: Mapping[str, TokenPrices] | None = None) -> None:
        self._exact: dict[str, TokenPrices] = {}
        self._patterns: list[tuple[str, TokenPrices]] = []
        for key, prices in (table or {}).items():
            key = key.lower()
            if any(c in key for c in "*?["):
                self._patterns.append((key, prices))
            else:
                self._exact[key] = prices
        self._patterns.sort(key=lambda item: -_literal_length(item[0]))

    def __bool__(self) -> bool:
        return bool(self._exact or self._patterns)

    def find(self, provider: str, names: list[str]) -> tuple[str, TokenPrices] | None:
        """The first of `names` (model names, in order of preference) with a price, and that price."""
        found = self.find_entry(provider, names)
        return None if found is None else (found[0], found[2])

    def find_entry(self, provider: str, names: list[str]) -> tuple[str, str, TokenPrices] | None:
        """Like `find`, with the table's key that matched (lower case): (name, key, prices)."""
        for name in names:
            wanted = f"{provider}/{name}".lower()
            prices = self._exact.get(wanted)
            if prices is not None:
                return name, wanted, prices
            for pattern, prices in self._patterns:
                if fnmatch.fnmatchcase(wanted, pattern):
                    return name, pattern, prices
        return None


def _literal_length(pattern: str) -> int:
    return sum(1 for c in pattern if c not in "*?[]")


# --- reading a table ----------------------------------------------------------------------------------


def load_price_table(
    source: Any, where: str, error: type[Exception] = PriceTableError
) -> dict[str, TokenPrices]:
    """Read overrides from a mapping or a JSON/TOML file path; a one-line `error` if invalid.

    `where` names the setting in the message (`LLMLENS_PRICES`, `prices`). The table maps
    `provider/model` to USD per million tokens:
    `{"input": 0.2, "output": 0.6, "cache_read": 0.05, "cache_write": 0.25}`.

    Example:
        >>> load_price_table({"ollama/*": {"input": 0, "output": 0}}, "prices")
        {'ollama/*': TokenPrices(input=0.0, output=0.0, cache_read=None, cache_write=None)}
    """
    try:
        return _load(source, where)
    except PriceTableError as problem:
        if error is PriceTableError:
            raise
        raise error(str(problem)) from None


def _load(source: Any, where: str) -> dict[str, TokenPrices]:
    if isinstance(source, Mapping):
        table: Any = source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        where = f"{where}={path!r}"
        table = _read_price_file(path, where)
    else:
        raise PriceTableError(f"{where}={source!r} is not valid; accepted values: {_TABLE} or a file path")
    if not isinstance(table, Mapping):
        raise PriceTableError(f"{where} holds a {type(table).__name__}; accepted values: {_TABLE}")
    return {_check_key(key, where): _check_prices(key, value, where) for key, value in table.items()}


def _read_price_file(path: str, where: str) -> Any:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        reason = error.strerror or error
        raise PriceTableError(
            f"{where}: cannot read the file ({reason}); accepted values: a JSON or TOML file"
        ) from None
    if path.lower().endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                accepted = "a JSON file (TOML needs Python 3.11+ or tomli)"
                raise PriceTableError(f"{where}: cannot read TOML; accepted values: {accepted}") from None
        try:
            return tomllib.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise PriceTableError(
                f"{where} is not valid TOML ({_one_line(error)}); accepted values: {_TABLE}"
            ) from None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise PriceTableError(
            f"{where} is not valid JSON ({_one_line(error)}); accepted values: {_TABLE}"
        ) from None


def _check_key(key: Any, where: str) -> str:
    provider, sep, model = key.partition("/") if isinstance(key, str) else ("", "", "")
    if not sep or not provider.strip() or not model.strip():
        accepted = "keys 'provider/model', e.g. 'openai/gpt-4o*'"
        raise PriceTableError(f"{where}: key {key!r} is not valid; accepted values: {accepted}")
    return key.strip()


def _check_prices(key: str, value: Any, where: str) -> TokenPrices:
    if not isinstance(value, Mapping):
        raise PriceTableError(f"{where}: {key!r} is not a table; accepted values: {_ENTRY}")
    unknown = sorted(set(value) - set(_PRICE_KEYS))
    if unknown:
        raise PriceTableError(f"{where}: {key!r} has unknown fields {unknown}; accepted values: {_ENTRY}")
    missing = [name for name in ("input", "output") if name not in value]
    if missing:
        raise PriceTableError(f"{where}: {key!r} misses {' and '.join(missing)}; accepted values: {_ENTRY}")
    numbers: dict[str, float] = {}
    for name in _PRICE_KEYS:
        if name not in value:
            continue
        number = value[name]
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < math.inf:
            accepted = "a number >= 0 (USD per million tokens)"
            raise PriceTableError(
                f"{where}: {key!r} {name}={number!r} is not valid; accepted values: {accepted}"
            )
        numbers[name] = float(number)
    return TokenPrices(**numbers)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
