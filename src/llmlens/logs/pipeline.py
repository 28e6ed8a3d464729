"""Where llmlens's own log records go: the OpenTelemetry logs pipeline and a console of last resort.

`install(logger_provider, options)` (run by `instrument()`, and so by `configure()`) attaches two handlers
to the `llmlens` logger, and nothing anywhere else: the application's handlers (the root logger's
included) are never added to, removed or changed.

- `OTelLogHandler`: records of the `llmlens` loggers at `LLMLENS_LOG_LEVEL` and above (WARNING unless
  set), and the proxy's request lines (`llmlens.proxy.requests`, INFO), become OpenTelemetry log records
  of the logger provider, with the trace and span ids of the context they were written in. A record that
  an OpenTelemetry handler of the application will export too (`opentelemetry-instrument` with
  `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true` puts one on the root logger) is left to it:
  exported once.
- `ConsoleHandler`: the same records to stderr in `LLMLENS_LOG_FORMAT` (text or JSON), only when no
  handler of the application would write them: Python's last resort, with ids. An application that
  configures logging gets llmlens's lines through its own handlers, once.

Every record of an llmlens logger is redacted (llmlens.logs.redact) before any handler sees it.
Neither handler ever raises or prints a logging error into the application.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry._logs import NoOpLoggerProvider, SeverityNumber, get_logger_provider

from llmlens._version import __version__
from llmlens.logs.formatters import JsonFormatter, TextFormatter
from llmlens.logs.redact import RedactingFilter, redact, redact_record
from llmlens.settings import Settings

__all__ = [
    "LOGGER_NAME",
    "REQUEST_LOGGER_NAME",
    "ConsoleHandler",
    "LogPipeline",
    "OTelLogHandler",
    "install",
    "installed",
    "uninstall",
]

LOGGER_NAME = "llmlens"
REQUEST_LOGGER_NAME = "llmlens.proxy.requests"  # one INFO line per proxied LLM request
LOG_READS = ("log_level", "log_format")  # the settings the pipeline reads

# Attributes every LogRecord has (and those the correlation adds): not exported as log attributes.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "correlation", "trace_id", "span_id", "request_id", "taskName",
}  # fmt: skip


def _severity(levelno: int) -> SeverityNumber:
    """The OpenTelemetry severity of a Python level (the data model's mapping, DEBUG=5 ... CRITICAL=21)."""
    for floor, number in ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5)):
        if levelno >= floor:
            return SeverityNumber(min(number + (levelno - floor) // 2, number + 3))
    return SeverityNumber.UNSPECIFIED


_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}  # the data model's short names


class _OwnHandler(logging.Handler):
    """What both llmlens handlers share: redaction first, a level per record, and silence on errors."""

    def __init__(self, threshold: int, request_threshold: int) -> None:
        super().__init__(logging.NOTSET)
        self.threshold = threshold
        self.request_threshold = request_threshold

    def filter(self, record: logging.LogRecord) -> Any:
        try:
            redact_record(record)  # before the application's handlers further up see the record
        except Exception:
            pass
        wanted = self.request_threshold if record.name == REQUEST_LOGGER_NAME else self.threshold
        return record.levelno >= wanted and super().filter(record)

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # a log line that cannot be written is dropped: never a traceback in the application


class OTelLogHandler(_OwnHandler):
    """llmlens's records as OpenTelemetry log records of `logger_provider` (scope: the logger's name)."""

    def __init__(self, logger_provider: Any, threshold: int, request_threshold: int = logging.INFO) -> None:
        super().__init__(threshold, request_threshold)
        self.logger_provider = logger_provider
        self._loggers: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if _handled_by(record, _exports_to_otel):
                return  # the application's OpenTelemetry handler exports it
            self.export(
                record.name, record.levelno, record.getMessage(), _attributes(record),
                otel_context.get_current(), int(record.created * 1e9),
            )  # fmt: skip
        except Exception:
            pass  # (not logged: a log line about a log line would come back here)

    def export(
        self, name: str, levelno: int, body: str, attributes: dict[str, Any], context: Any, timestamp: int
    ) -> None:
        """One OpenTelemetry log record on the scope `name` (`body` as given: redact it first)."""
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self.logger_provider.get_logger(name, __version__)
        level = logging.getLevelName(levelno)
        logger.emit(
            timestamp=timestamp,
            observed_timestamp=time.time_ns(),
            context=context,
            severity_number=_severity(levelno),
            severity_text=_SEVERITY_TEXT.get(level, level),
            body=body,
            attributes=attributes,
        )


class ConsoleHandler(_OwnHandler):
    """llmlens's records to stderr (the current `sys.stderr`), when no handler of the application would
    write them."""

    terminator = "\n"

    def __init__(self, formatter: logging.Formatter, threshold: int, request_threshold: int) -> None:
        super().__init__(threshold, request_threshold)
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if _handled_by(record, _writes):
                return
            stream = sys.stderr
            if stream is not None:
                stream.write(self.format(record) + self.terminator)
                stream.flush()
        except Exception:
            pass


def _attributes(record: logging.LogRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if record.name != REQUEST_LOGGER_NAME:  # (a request line is written by llmlens.logs.requests, always)
        attributes["code.file.path"] = record.pathname
        attributes["code.function.name"] = record.funcName
        attributes["code.line.number"] = record.lineno
    request_id = getattr(record, "request_id", None)
    if request_id:
        attributes["llmlens.proxy.request_id"] = request_id
    for key, value in record.__dict__.items():  # a record's `extra`: what llmlens passed with it
        if key not in _RESERVED and not key.startswith("_") and isinstance(value, (str, bool, int, float)):
            attributes[key] = value
    if record.exc_info and record.exc_info[0] is not None:
        attributes["exception.type"] = record.exc_info[0].__name__
        attributes["exception.message"] = str(record.exc_info[1])
    if record.exc_text:  # (redacted, see redact_record)
        attributes["exception.stacktrace"] = record.exc_text
    return attributes


# --- who else handles a record ------------------------------------------------------------------------

_OTEL_TYPES: dict[type, bool] = {}


def _exports_to_otel(handler: logging.Handler) -> bool:
    """An OpenTelemetry logging bridge of the application (the SDK's or the contrib's LoggingHandler)."""
    kind = type(handler)
    found = _OTEL_TYPES.get(kind)
    if found is None:
        found = _OTEL_TYPES[kind] = any(
            c.__name__ == "LoggingHandler" and c.__module__.startswith("opentelemetry") for c in kind.__mro__
        )
    return found


def _writes(handler: logging.Handler) -> bool:
    return True


def _handled_by(record: logging.LogRecord, kind: Any) -> bool:
    """Whether a handler of the application (not llmlens's) of this kind takes the record on its way up
    from its logger, as `Logger.callHandlers` would hand it."""
    logger: Any = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if not isinstance(handler, _OwnHandler) and record.levelno >= handler.level and kind(handler):
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


# --- install ------------------------------------------------------------------------------------------


class LogPipeline:
    """llmlens's handlers and filters, as installed; `remove()` takes them all away again."""

    def __init__(self, logger_provider: Any, settings: Settings) -> None:
        level = None if settings.log_level is None else logging.getLevelName(settings.log_level)
        threshold = logging.WARNING if level is None else level
        request_threshold = min(threshold, logging.INFO)
        formatter = JsonFormatter() if settings.log_format == "json" else TextFormatter()
        self.logger_provider = logger_provider
        self.console = ConsoleHandler(formatter, threshold, threshold)
        self.otel = OTelLogHandler(logger_provider, threshold, request_threshold)
        self.filter = RedactingFilter()
        self.level = level
        self._previous_level: int | None = None

    def attach(self) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        if self.level is not None:  # asked for: the records below WARNING must be made at all
            self._previous_level = logger.level
            logger.setLevel(self.level)
        for child in _llmlens_loggers():
            child.addFilter(self.filter)
        logger.addHandler(self.otel)
        logger.addHandler(self.console)

    def remove(self) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        logger.removeHandler(self.console)
        logger.removeHandler(self.otel)
        for child in _llmlens_loggers():
            child.removeFilter(self.filter)
        if self._previous_level is not None and logger.level == self.level:
            logger.setLevel(self._previous_level)

    def exports(self) -> bool:
        """Whether records given to the OpenTelemetry handler go anywhere. Not while its provider is the
        API's stand-in and no SDK provider has been set (nor ever with a no-op provider): a request line
        built only for that would cost a proxy about a tenth of its instrumentation per request."""
        if self._live:
            return True
        provider = self.logger_provider
        if _is_stand_in(provider):
            provider = get_logger_provider()  # the global one, set since install() perhaps
        self._live = not _is_stand_in(provider) and not isinstance(provider, NoOpLoggerProvider)
        return self._live

    _live = False  # (a provider, once set, is never unset: True is kept)

    def export_only(self, name: str, body: str, attributes: dict[str, Any], context: Any) -> None:
        """An INFO line straight to the OpenTelemetry logs pipeline, redacted, in `context`: a request
        line of a logger not enabled for INFO (the application's handlers do not want it; the pipeline
        does), without the cost of a `logging` record."""
        try:
            if self.otel.request_threshold <= logging.INFO:
                self.otel.export(name, logging.INFO, redact(body), attributes, context, time.time_ns())
        except Exception:
            pass


def _is_stand_in(provider: Any) -> bool:
    """The API's ProxyLoggerProvider: it hands records to the global provider once one is set."""
    return type(provider).__name__ == "ProxyLoggerProvider" and type(provider).__module__.startswith(
        "opentelemetry._logs"
    )


def _llmlens_loggers() -> Iterator[logging.Logger]:
    """The `llmlens` logger and its children that exist (and the request logger): a logger's filters
    apply to the records made on it, so each gets the redacting filter."""
    logging.getLogger(REQUEST_LOGGER_NAME)  # made now if not yet
    yield logging.getLogger(LOGGER_NAME)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(f"{LOGGER_NAME}.") and isinstance(logger, logging.Logger):
            yield logger


_INSTALLED: list[LogPipeline] = []


def installed() -> LogPipeline | None:
    """The pipeline in place, if any."""
    return _INSTALLED[-1] if _INSTALLED else None


def install(logger_provider: Any = None, options: Mapping[str, Any] | None = None) -> LogPipeline:
    """Put llmlens's handlers in place (replacing any earlier ones) for `logger_provider` (None: the
    global one). `options`: instrument()'s keywords; a bad log setting means the defaults here (the
    caller reports it)."""
    if logger_provider is None:
        from opentelemetry._logs import get_logger_provider

        logger_provider = get_logger_provider()
    given = {k: v for k, v in (options or {}).items() if k in LOG_READS}
    settings, _errors = Settings.from_env_lenient(only=LOG_READS, **given)  # (the caller says them)
    uninstall()
    pipeline = LogPipeline(logger_provider, settings)
    pipeline.attach()
    _INSTALLED.append(pipeline)
    return pipeline


def uninstall(logger_provider: Any = None) -> None:
    """Take llmlens's handlers away (only if they serve `logger_provider`, when one is given)."""
    pipeline = installed()
    if pipeline is None or (logger_provider is not None and pipeline.logger_provider is not logger_provider):
        return
    _INSTALLED.clear()
    pipeline.remove()
