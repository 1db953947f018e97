"""The inference gateway: an OpenAI-compatible API in front of deployed model versions and upstream models,
with API keys, budgets, policy and DLP on every prompt and response, provenance and an audit event per
request. See services/gateway/README.md."""
