"""Demo helpers: a fake OpenAI-compatible provider for the demo, tests and benchmarks."""
