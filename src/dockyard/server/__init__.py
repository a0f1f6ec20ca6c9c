"""The long-running processes: the scheduler and its duties, worker slots, process
supervision and ``dockyard serve``. Everything here drives :class:`dockyard.app.App`."""
