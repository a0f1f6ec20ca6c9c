"""Pull-request CI front-end: webhooks, the controller driving app.ci and app.triggers, provider
clients and the summary (docs/ci.md)."""
