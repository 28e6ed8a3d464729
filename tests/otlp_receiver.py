"""`OtlpReceiver`: a small real OTLP receiver on loopback for the tests, over gRPC and over HTTP.

It stands where a backend (Jaeger, Tempo, another collector) would be behind a collector under test,
and keeps every export request it is sent, decoded with opentelemetry-proto:

    with OtlpReceiver() as backend:
        ...                              # a collector forwards to backend.grpc_endpoint / http_endpoint
        backend.wait_for(lambda r: len(r.spans()) >= 2)
        for resource, scope, span in backend.spans(): ...

gRPC: the three OTLP services (`TraceService/Export`, `MetricsService/Export`, `LogsService/Export`) on
one port, gzip or not. HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf bodies,
`Content-Encoding: gzip` or none, answered with an empty protobuf export response.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# path -> (request type, response type, the list of received requests it goes to)
_SIGNALS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


class OtlpReceiver:
    """Both listeners on free 127.0.0.1 ports; a context manager. Thread-safe reads of what arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.log_requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.transports: list[str] = []  # "grpc" or "http", one per request received
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_port = 0
        self.http_port = 0

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self._grpc)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = _HttpServer(("127.0.0.1", 0), self)
        self.http_port = int(self._http.server_address[1])
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="otlp-http", daemon=True)
        self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- recording ------------------------------------------------------------------------------

    def record(self, request: Any, transport: str) -> None:
        with self._lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.trace_requests.append(request)
            elif isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                self.metric_requests.append(request)
            else:
                self.log_requests.append(request)
            self.transports.append(transport)

    # --- what arrived, flattened ----------------------------------------------------------------

    def spans(self) -> list[tuple[Any, Any, Any]]:
        """(resource, scope, span) for every span received."""
        with self._lock:
            requests = list(self.trace_requests)
        return list(flat_spans(requests))

    def metric_points(self) -> list[tuple[Any, Any, Any, Any]]:
        """(resource, scope, metric without its points, data point) for every point received."""
        with self._lock:
            requests = list(self.metric_requests)
        return list(flat_metric_points(requests))

    def log_records(self) -> list[tuple[Any, Any, Any]]:
        """(resource, scope, log record) for every record received."""
        with self._lock:
            requests = list(self.log_requests)
        return list(flat_log_records(requests))

    def wait_for(self, condition: Callable[[OtlpReceiver], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the OTLP receiver did not get what was expected within {timeout:g} s: "
                    f"{len(self.spans())} spans, {len(self.metric_points())} metric points, "
                    f"{len(self.log_records())} log records"
                )
            time.sleep(0.05)


# --- flattening, shared with what the application says it sent ------------------------------------


def flat_spans(requests: list[Any]) -> Iterator[tuple[Any, Any, Any]]:
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    yield resource_spans.resource, scope_spans.scope, span


def flat_metric_points(requests: list[Any]) -> Iterator[tuple[Any, Any, Any, Any]]:
    for request in requests:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    header = type(metric)()
                    header.CopyFrom(metric)
                    header.ClearField(kind)
                    for point in data.data_points:
                        yield resource_metrics.resource, scope_metrics.scope, header, point


def flat_log_records(requests: list[Any]) -> Iterator[tuple[Any, Any, Any]]:
    for request in requests:
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    yield resource_logs.resource, scope_logs.scope, record


def attributes(key_values: Any) -> dict[str, Any]:
    """OTLP key-values as a plain dict (nested arrays and maps as lists and dicts)."""
    return {kv.key: plain(kv.value) for kv in key_values}


def plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


# --- gRPC -----------------------------------------------------------------------------------------


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self._receiver.record(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self._receiver.record(request, "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self._receiver.record(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


# --- HTTP -----------------------------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _HttpHandler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        signal = _SIGNALS.get(self.path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if signal is None:
            self._reply(404, b"")
            return
        if self.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        request_type, response_type = signal
        request = request_type()
        request.ParseFromString(body)
        self.server.receiver.record(request, "http")
        self._reply(200, response_type().SerializeToString())

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
