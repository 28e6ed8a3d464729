"""Every OpenTelemetry name llmlens emits, in one place.

The GenAI conventions moved out of `open-telemetry/semantic-conventions` into
`open-telemetry/semantic-conventions-genai`, and every constant in the
`opentelemetry-semantic-conventions` package is now deprecated, so we keep our own.

Followed: semantic-conventions-genai `main` as of 2026-08-03 (core semconv v1.43.0), with the
metric names the official `opentelemetry-util-genai` 1.3b0 still emits
(`gen_ai.client.operation.duration`, `gen_ai.client.token.usage`, ...). The newer names merged after
August (inference and embeddings metrics, token counters, `cache_write`) are emitted instead of, or
beside, those when `OTEL_SEMCONV_STABILITY_OPT_IN` asks for them (`settings.SemconvNames`).
"""

from __future__ import annotations

SPEC_VERSION = "semantic-conventions-genai main 2026-08-03 (core v1.43.0)"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.43.0"

# --- attributes: operation and provider -------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_STATUS_CODE = "http.response.status_code"

# --- request ------------------------------------------------------------------------------
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_REASONING_LEVEL = "gen_ai.request.reasoning.level"
REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
REQUEST_PREVIOUS_RESPONSE_ID = "gen_ai.request.previous_response.id"
OUTPUT_TYPE = "gen_ai.output.type"
CONVERSATION_ID = "gen_ai.conversation.id"

# --- response -----------------------------------------------------------------------------
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"

# --- usage --------------------------------------------------------------------------------
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
# The newer name of the same count (semantic-conventions-genai after Aug 2026).
USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
# Per-modality counts (semantic-conventions-genai after Aug 2026; gen_ai.token.modality values), each a
# part of the total above it: modality -> attribute name.
TOKEN_MODALITIES = ("text", "image", "audio")
USAGE_MODALITY_INPUT_TOKENS = {m: f"gen_ai.usage.{m}.input_tokens" for m in TOKEN_MODALITIES}
USAGE_MODALITY_OUTPUT_TOKENS = {m: f"gen_ai.usage.{m}.output_tokens" for m in TOKEN_MODALITIES}
USAGE_MODALITY_CACHE_READ_INPUT_TOKENS = {
    m: f"gen_ai.usage.{m}.cache_read.input_tokens" for m in TOKEN_MODALITIES
}
TOKEN_TYPE = "gen_ai.token.type"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
# llmlens.usage.tokens only (the spec's gen_ai.token.type has just input and output).
TOKEN_TYPE_CACHE_READ = "cache_read"
TOKEN_TYPE_CACHE_WRITE = "cache_write"
TOKEN_TYPE_REASONING = "reasoning"
# The token counters of the newer conventions are broken down by modality; `unknown` when the provider
# does not say (or for the zero recorded when no usage came back).
TOKEN_MODALITY = "gen_ai.token.modality"
TOKEN_MODALITY_UNKNOWN = "unknown"

# --- content (opt-in) ---------------------------------------------------------------------
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"

# --- OpenAI refinement (openai.md) --------------------------------------------------------
OPENAI_API_TYPE = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"

# --- Anthropic (the names the anthropic SDK's own spans use, so dashboards carry over) ---
ANTHROPIC_REQUEST_SERVICE_TIER = "anthropic.request.service_tier"
ANTHROPIC_RESPONSE_SERVICE_TIER = "anthropic.response.service_tier"
ANTHROPIC_THINKING_TYPE = "anthropic.thinking.type"
ANTHROPIC_THINKING_BUDGET_TOKENS = "anthropic.thinking.budget_tokens"
ANTHROPIC_STOP_REASON = "anthropic.message.stop_reason"  # raw; finish_reasons holds the mapped value
ANTHROPIC_CACHE_CREATION_5M = "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"
ANTHROPIC_CACHE_CREATION_1H = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
ANTHROPIC_COUNT_TOKENS_INPUT_TOKENS = "anthropic.message.count_tokens.input_tokens"

# --- Cohere: the consumed counts (`usage.tokens`), beside the billed ones in gen_ai.usage.* ---
COHERE_USAGE_CONSUMED_INPUT_TOKENS = "cohere.usage.tokens.input_tokens"
COHERE_USAGE_CONSUMED_OUTPUT_TOKENS = "cohere.usage.tokens.output_tokens"
# `usage.cached_tokens`: a part of the consumed input, not of the billed one, so not a cache read here.
COHERE_USAGE_CACHED_TOKENS = "cohere.usage.cached_tokens"

# --- AWS (the AWS SDK and Bedrock attributes of the semantic conventions registry) ------------
AWS_REQUEST_ID = "aws.request_id"
AWS_BEDROCK_GUARDRAIL_ID = "aws.bedrock.guardrail.id"

# --- our own (the `llmlens.` prefix marks what the spec does not define) -----------------
LLMLENS_STREAM_OUTCOME = "llmlens.stream.outcome"
LLMLENS_STREAM_CHUNKS = "llmlens.stream.chunk_count"
LLMLENS_TOOL_CALL_COUNT = "llmlens.response.tool_call_count"
LLMLENS_REFUSAL = "llmlens.response.refusal"
# Set on an SDK (CLIENT) span made while an llmlens proxy SERVER span is active: the request is
# recorded once, by the SERVER span; this one is its upstream leg.
LLMLENS_UPSTREAM = "llmlens.upstream"
LLMLENS_API_KEY_LABEL = "llmlens.api_key.label"
LLMLENS_SOURCE_FORMAT = "llmlens.proxy.source_format"
LLMLENS_TARGET_FORMAT = "llmlens.proxy.target_format"
LLMLENS_PROFILE_ID = "llmlens.profile.id"
# The gen_ai.usage.* attributes a response reported but that were not token counts (negative, not a
# whole number, absurdly large): dropped from the span, metrics, cost and store (core/limits.py).
LLMLENS_USAGE_INVALID = "llmlens.usage.invalid"
CLIENT_ADDRESS = "client.address"
SERVICE_NAME = "service.name"

# Cost: the proposal in semantic-conventions-genai PR #443 (not final), used until it lands.
USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
USAGE_COST_SOURCE = "gen_ai.usage.cost.source"
COST_SOURCE_LOCAL = "local"  # derived here from token usage and prices (`provider`: reported by the API)
# Where the price came from: "genai-prices <version>", "override" or "free" (llmlens.pricing).
LLMLENS_COST_PRICE_SOURCE = "llmlens.cost.price_source"
LLMLENS_COST_UNPRICED_REASON = "llmlens.cost.unpriced_reason"

# Stream outcomes: how a streamed call ended.
OUTCOME_COMPLETED = "completed"  # the stream was read to its end
OUTCOME_CLOSED = "closed"  # the caller closed it (close()/aclose()/with-exit) before the end
OUTCOME_ABANDONED = "abandoned"  # the caller dropped it; ended when it was garbage collected
OUTCOME_ERROR = "error"  # an exception while reading (transport error, ...)
OUTCOME_CANCELLED = "cancelled"  # the task reading it was cancelled

# --- operation names ----------------------------------------------------------------------
OP_CHAT = "chat"
OP_TEXT_COMPLETION = "text_completion"
OP_EMBEDDINGS = "embeddings"
OP_GENERATE_CONTENT = "generate_content"
# Not an inference (no tokens are consumed or billed): a custom value, as the spec allows.
OP_COUNT_TOKENS = "count_tokens"

# --- finish reasons (output-message schema) -----------------------------------------------
FINISH_ERROR = "error"

# --- metrics ------------------------------------------------------------------------------
# The default names (`OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental/dup` keeps them beside
# the newer ones). gen_ai.client.operation.duration also stays, under every setting, for what is
# neither an inference nor embeddings (count_tokens).
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
# Tokens by gen_ai.token.type, cache and reasoning included, which no metric of the default names carries:
# emitted beside the default names, not with the newer names alone (their counters carry the same).
METRIC_LLMLENS_USAGE_TOKENS = "llmlens.usage.tokens"  # {token}, monotonic counter
# The newer names (`OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`): inference operations.
METRIC_INFERENCE_DURATION = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.inference.time_per_output_chunk"
# Monotonic counters by gen_ai.token.modality, for every inference (a failed one adds 0).
METRIC_INFERENCE_USAGE_INPUT_TOKENS = "gen_ai.client.inference.usage.input_tokens"
METRIC_INFERENCE_USAGE_OUTPUT_TOKENS = "gen_ai.client.inference.usage.output_tokens"
METRIC_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.client.inference.usage.cache_write.input_tokens"
METRIC_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.client.inference.usage.reasoning.output_tokens"
# Histograms of one operation's tokens (percentiles, never sums), for successful operations only.
METRIC_INFERENCE_OPERATION_INPUT_TOKENS = "gen_ai.client.inference.operation.input_tokens"
METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS = "gen_ai.client.inference.operation.output_tokens"
# The newer names: embeddings operations (no longer on operation.duration or token.usage).
METRIC_EMBEDDINGS_DURATION = "gen_ai.client.embeddings.duration"
METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS = "gen_ai.client.embeddings.operation.input_tokens"
METRIC_LLMLENS_COST = "llmlens.cost"  # USD, monotonic counter
METRIC_LLMLENS_COST_UNPRICED = "llmlens.cost.unpriced"  # calls, by llmlens.cost.unpriced_reason

# Bucket advice from the spec (ExplicitBucketBoundaries).
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

# --- proxies (the SERVER span of llmlens.proxy) -------------------------------------------
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
URL_PATH = "url.path"
USER_AGENT = "user_agent.original"
HTTP_REQUEST_BODY_SIZE = "http.request.body.size"
HTTP_RESPONSE_BODY_SIZE = "http.response.body.size"
LLMLENS_REQUEST_ID = "llmlens.proxy.request_id"  # x-request-id, honoured or made, and returned
# Seconds from the request's arrival until the proxy had read and decoded it (its span then starts).
LLMLENS_PARSE_DURATION = "llmlens.proxy.parse_duration"
# Seconds from the request's arrival until the proxy sent the response's start (status and headers).
LLMLENS_RESPONSE_START = "llmlens.proxy.time_to_response_start"
# What the proxy sent upstream, when it differs from what the client asked for (translating proxies).
LLMLENS_UPSTREAM_PROVIDER = "llmlens.proxy.upstream.provider"
LLMLENS_UPSTREAM_MODEL = "llmlens.proxy.upstream.model"
# How a proxied request ended (llmlens.stream.outcome on the SERVER span).
OUTCOME_CLIENT_DISCONNECTED = "client_disconnected"  # the client went away before the last byte
OUTCOME_UPSTREAM_ERROR = "upstream_error"  # an error event inside a stream that had started (HTTP 200)
OUTCOME_SERVER_EXCEPTION = "server_exception"  # the application raised
OUTCOME_ERROR_RESPONSE = "error_response"  # a stream request answered with an HTTP error status
METRIC_SERVER_REQUEST_DURATION = "gen_ai.server.request.duration"
METRIC_SERVER_TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
METRIC_SERVER_TIME_PER_OUTPUT_TOKEN = "gen_ai.server.time_per_output_token"
METRIC_LLMLENS_SERVER_ACTIVE_REQUESTS = "llmlens.server.active_requests"  # UpDownCounter, {request}
SERVER_TIME_TO_FIRST_TOKEN_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
SERVER_TIME_PER_OUTPUT_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip

# --- events -------------------------------------------------------------------------------
EVENT_OPERATION_DETAILS = "gen_ai.client.inference.operation.details"

# Attributes relevant to sampling: set at span start (gen-ai-spans.md "Spans").
# Metric attributes: the low-cardinality subset the spec lists for every client metric.
METRIC_ATTRIBUTE_KEYS = (
    OPERATION_NAME,
    PROVIDER_NAME,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
)
