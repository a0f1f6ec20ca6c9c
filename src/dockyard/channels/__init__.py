"""Notification channels: Slack, Microsoft Teams, email, PagerDuty, signed webhooks (docs/alerts.md)."""
