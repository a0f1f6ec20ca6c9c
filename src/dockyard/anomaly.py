"""Anomaly scoring of monitor series (docs/monitors.md)."""
