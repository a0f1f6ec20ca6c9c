"""Built-in event sinks. Each is one module and one line in pyproject.toml's
``[project.entry-points."dockyard.sinks"]`` (see :mod:`dockyard.plugins`)."""
