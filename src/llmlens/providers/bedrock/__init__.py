"""AWS Bedrock Runtime through boto3/botocore: `converse`, `converse_stream`, `invoke_model` and
`invoke_model_with_response_stream`, for the Anthropic, Amazon Nova, Meta Llama and Mistral families.

One patch point: botocore builds its client classes at runtime, and every API call of every AWS client
goes through `botocore.client.BaseClient._make_api_call(operation_name, api_params)`. The wrapper looks
at the client's service name first; a call to any other AWS service (S3, DynamoDB...) goes straight on,
at the cost of one attribute read and one string comparison. The span covers botocore's retries.

What each operation hands back:
- `converse`: a dict; read at once.
- `invoke_model`: a dict whose `body` is a `StreamingBody` the user reads once. We read it, put a fresh
  `StreamingBody` over the same bytes back in its place, and parse the family's JSON from the bytes.
- `converse_stream` / `invoke_model_with_response_stream`: a dict whose `stream` / `body` is a botocore
  `EventStream`. That entry is replaced by a stream proxy (core/streams.py), which ends the span on every
  exit path: read to the end, `close()`, dropped (GC), or an exception while reading, which is either an
  exception event of the stream (botocore raises `EventStreamError`: `modelStreamErrorException`,
  `throttlingException`...) or a broken connection.

Usage (see docs/providers.md and usage.py): Bedrock reports input tokens WITHOUT the prompt-cache reads
and writes, so `gen_ai.usage.input_tokens` = input + cache read + cache write; the two cache counts also
go in their own attributes.

Errors: `botocore.exceptions.ClientError` carries the AWS error code (`ThrottlingException`), which
core/telemetry.py reports as `error.type`, with the HTTP status in `http.response.status_code`.

Modules, each importing only those above it:
- values.py: type-checked scalars and containers, finish reasons, model families;
- usage.py: token counts of every response shape;
- content.py: content capture (Converse and Anthropic blocks as semconv parts);
- params.py: request parameter tables;
- converse.py: the Converse API (request, response, stream accumulator);
- invoke_chunks.py: InvokeModelWithResponseStream chunk readers, one per body format;
- invoke_formats.py: InvokeModel body formats, one per model family, and `InvokeCall`;
- patch.py: the botocore patch (`BedrockPatch`, `EventStreamProxy`) and `instrument`.

Only plain data leaves this package; spans, metrics and names live in core/telemetry.py.
"""

from llmlens.providers.bedrock.patch import instrument

INSTRUMENTS = "botocore >= 1.34"

__all__ = ["INSTRUMENTS", "instrument"]
