"""The dockyard command line: a thin layer over :class:`dockyard.app.App`."""
