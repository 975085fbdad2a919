"""basalt llm-orchestrator: OpenAI-compatible chat API over many providers."""
