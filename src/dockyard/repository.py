"""Code from git: the cached clone, checkouts of exact commits (docs/ci.md, "Code from git")."""
