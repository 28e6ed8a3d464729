"""One module per LLM SDK; each turns SDK objects into plain data for the core."""
