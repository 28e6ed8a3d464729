"""rotel processor: drops captured GenAI content (prompts, completions, system instructions, tool
definitions) from spans and log records on their way through the collector.

rotel runs this file in its embedded Python (the `rotel` wheel's binary is built with the Python
processor SDK); rotel.env names it in ROTEL_OTLP_WITH_TRACE_PROCESSOR and ROTEL_OTLP_WITH_LOGS_PROCESSOR.
Remove those two lines to keep the content. The same keys are deleted by otelcol-contrib.yaml's
`transform/drop_content` processor.

Spans carry the content as span attributes (JSON strings); the `gen_ai.client.inference.operation.details`
event carries it as log record attributes (structured), and a record whose body is a map may carry the
same keys there. Everything else passes unchanged. Only the standard library and rotel_sdk are
available here.
"""

from rotel_sdk.open_telemetry.common.v1 import KeyValueList

CONTENT_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
    }
)


def process_spans(resource_spans):
    for scope_spans in resource_spans.scope_spans:
        for span in scope_spans.spans:
            if any(kv.key in CONTENT_KEYS for kv in span.attributes):
                span.attributes = [kv for kv in span.attributes if kv.key not in CONTENT_KEYS]


def process_logs(resource_logs):
    for scope_logs in resource_logs.scope_logs:
        for record in scope_logs.log_records:
            if any(kv.key in CONTENT_KEYS for kv in record.attributes):
                record.attributes = [kv for kv in record.attributes if kv.key not in CONTENT_KEYS]
            body = record.body
            if body is not None and isinstance(body.value, KeyValueList):
                entries = body.value
                for index in reversed(range(len(entries))):
                    if entries[index].key in CONTENT_KEYS:
                        del entries[index]
