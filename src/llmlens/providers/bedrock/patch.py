"""The botocore patch: `BaseClient._make_api_call` wrapped once for every AWS client; `bedrock-runtime`
calls become invocations (converse.py or invoke_formats.py reads them), the others pass straight on.

`invoke_model`'s `StreamingBody` is read and replaced by a fresh one over the same bytes; the event
stream of `converse_stream` / `invoke_model_with_response_stream` is replaced by `EventStreamProxy`,
which ends the span on every exit path (core/streams.py).
"""

from __future__ import annotations

import importlib
import io
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from wrapt import wrap_function_wrapper

from llmlens import semconv
from llmlens.core.invocation import Invocation
from llmlens.core.lifecycle import TracedCall
from llmlens.core.streams import StreamState, SyncStreamProxy
from llmlens.core.telemetry import Telemetry
from llmlens.providers.bedrock.converse import ConverseCall
from llmlens.providers.bedrock.invoke_formats import UNTRACED_MODELS, InvokeCall, format_for, invoke_body
from llmlens.providers.bedrock.values import mapping, model_name
from llmlens.providers.endpoints import default_port
from llmlens.settings import Settings

_log = logging.getLogger("llmlens")
PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"


class EventStreamProxy(SyncStreamProxy):
    """The proxy over a botocore `EventStream`, which is iterable but not an iterator: `next()` on it
    fails as it does without llmlens, and does not end the span."""

    def __next__(self) -> Any:
        raise TypeError(f"'{type(self.__wrapped__).__name__}' object is not an iterator")


_STREAM_KEYS = {"ConverseStream": "stream", "InvokeModelWithResponseStream": "body"}


class BedrockPatch:
    """Wraps `botocore.client.BaseClient._make_api_call`; only `bedrock-runtime` calls are traced."""

    def __init__(self, telemetry: Telemetry, settings: Settings) -> None:
        self.telemetry = telemetry
        self.settings = settings
        self.active = False
        self.converse = ConverseCall(settings)
        self._endpoints: dict[str, tuple[str, str | None, int | None]] = {}
        self._client_module = importlib.import_module("botocore.client")
        response = importlib.import_module("botocore.response")
        self._streaming_body = response.StreamingBody
        self._call = TracedCall(self, self._begin, self._result, on_error=self._error)

    def patch(self) -> None:
        wrap_function_wrapper(self._client_module, "BaseClient._make_api_call", self._call.sync)
        self.active = True

    def unpatch(self) -> None:
        # A wrapper someone added on top of ours stays; `active` makes ours a pass-through under it.
        self.active = False
        cls = self._client_module.BaseClient
        method = cls.__dict__.get("_make_api_call")
        if getattr(method, "_self_wrapper", None) == self._call.sync:
            cls._make_api_call = method.__wrapped__

    # --- the steps of a call (core/lifecycle.py runs them) --------------------------------------------

    def _begin(self, client: Any, args: tuple, kwargs: dict) -> tuple[Invocation, tuple[str, Any]] | None:
        """The invocation of a Bedrock Runtime call, or None to pass the call through untouched."""
        # Every AWS call of the process passes here: leave everything but Bedrock Runtime at once.
        service = getattr(getattr(client, "_service_model", None), "service_name", None)
        if service != SERVICE:
            return None
        operation = args[0] if args else kwargs.get("operation_name")
        params = args[1] if len(args) > 1 else kwargs.get("api_params")
        if not isinstance(params, Mapping):
            return None
        model = params.get("modelId")
        model = model if isinstance(model, str) else None
        call: Any
        if operation in ("Converse", "ConverseStream"):
            call = self.converse
        elif operation in ("InvokeModel", "InvokeModelWithResponseStream"):
            if model is not None and model_name(model).startswith(UNTRACED_MODELS):
                return None
            body = invoke_body(params)
            call = InvokeCall(format_for(model or "", body), body, self.settings.content_max_length)
        else:
            return None
        provider, host, port = self._endpoint(client)
        stream = operation in _STREAM_KEYS
        inv = Invocation(self.telemetry, call.operation, provider, model, host, port, stream)
        call.request(inv, params)
        return inv, (operation, call)

    def _error(self, inv: Invocation, route: tuple[str, Any], error: BaseException) -> None:
        _request_id(inv, getattr(error, "response", None))

    def _endpoint(self, client: Any) -> tuple[str, str | None, int | None]:
        """Provider, host and port of the client's endpoint URL, parsed once per URL."""
        url = client.meta.endpoint_url
        found = self._endpoints.get(url)
        if found is None:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or default_port(parts.scheme)
            overrides = self.settings.provider_map
            provider = (overrides.get(f"{host}:{port}") or overrides.get(host or "")) if overrides else None
            found = (provider or PROVIDER, host, port)
            if len(self._endpoints) < 256:
                self._endpoints[url] = found
        return found

    def _result(self, inv: Invocation, route: tuple[str, Any], result: Any) -> Any:
        """Attach the end of the invocation to what botocore returned (core/lifecycle.py makes a
        failure here a finished invocation and botocore's own result)."""
        operation, call = route
        _request_id(inv, result)
        key = _STREAM_KEYS.get(operation)
        if key is not None:
            event_stream = result.get(key)
            if event_stream is not None:
                on_event, on_end = call.stream(inv)
                state = StreamState(inv, on_event, on_end)
                result[key] = EventStreamProxy(event_stream, state, hook_close=False)
                return result
        elif operation == "InvokeModel":
            return self._invoke_result(inv, call, result)
        else:
            call.response(inv, result)
        inv.finish()
        return result

    def _invoke_result(self, inv: Invocation, call: InvokeCall, result: Any) -> Any:
        """Read the body (the user gets an unread copy of the same bytes) and end the invocation."""
        original = result.get("body")
        if original is None:
            inv.finish()
            return result
        try:
            data = original.read()
        except Exception as error:  # the connection broke: the user's own read raises the same error
            result["body"] = self._streaming_body(_Failed(error), None)
            inv.fail(error)
            return result
        except BaseException as error:  # Ctrl-C while reading: ended as cancelled, and on its way
            inv.fail(error)
            raise
        result["body"] = self._streaming_body(io.BytesIO(data), len(data))
        try:
            headers = mapping(mapping(result.get("ResponseMetadata")).get("HTTPHeaders"))
            call.response(inv, data, headers)
        except Exception:
            _log.debug("llmlens: could not read the response body", exc_info=True)
        inv.finish()
        return result


def _request_id(inv: Invocation, response: Any) -> None:
    """AWS's id of the request (`ResponseMetadata.RequestId` of a response or of a ClientError)."""
    if isinstance(response, Mapping):
        request_id = mapping(response.get("ResponseMetadata")).get("RequestId")
        if isinstance(request_id, str) and request_id:
            inv.response_attributes[semconv.AWS_REQUEST_ID] = request_id


class _Failed:
    """A raw stream whose reads raise the error the real body raised when we read it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise self.error

    def close(self) -> None:
        return None


def instrument(telemetry: Telemetry, settings: Settings) -> BedrockPatch:
    patch = BedrockPatch(telemetry, settings)
    patch.patch()
    return patch
