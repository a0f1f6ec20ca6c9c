"""What dockyard knows about dbt itself, with no dockyard state: command lines and
selection flags (:mod:`.command`), node statuses and structured log events (:mod:`.events`)."""
