"""Slim CI: what changed between two manifests and why each node is selected, and the
pull-request schema (docs/ci.md, "How slim CI works")."""
