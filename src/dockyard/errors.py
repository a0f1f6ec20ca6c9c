"""One error hierarchy for dockyard.

Every front-end translates these once: the CLI prints
``Error: <what> (<file>:<line>, key <k>): <how to fix>`` and exits non-zero, the API
answers one JSON error shape using :attr:`DockyardError.status`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a file a problem is: file, 1-based line, dotted key path."""

    file: str | None = None
    line: int | None = None
    key: str | None = None

    def render(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.key:
            parts.append(f"key {self.key}")
        return ", ".join(parts)


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose.

    ``what`` says what is wrong, ``hint`` how to fix it, ``location`` where.
    """

    status = 400  # HTTP status when the error reaches the API
    exit_code = 1  # CLI exit code

    def __init__(self, what: str, *, hint: str | None = None, location: Location | None = None):
        self.what = what
        self.hint = hint
        self.location = location
        super().__init__(self.render())

    def render(self) -> str:
        text = self.what
        if self.location and self.location.render():
            text += f" ({self.location.render()})"
        if self.hint:
            text += f": {self.hint}"
        return text


class ConfigError(DockyardError):
    """dockyard.yml (or a file it refers to) is invalid."""


class ConfigErrors(ConfigError):
    """Several configuration problems at once; ``errors`` keeps each one."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        first = errors[0]
        super().__init__(first.what, hint=first.hint, location=first.location)

    def render(self) -> str:
        return "\n".join(e.render() for e in getattr(self, "errors", [])) or super().render()


class ProjectError(DockyardError):
    """The dbt project or its profiles cannot be used."""


class ForbiddenError(DockyardError):
    """The caller may not do this (a token's scope, or the API command policy)."""

    status = 403


class NotFoundError(DockyardError):
    status = 404


class ConflictError(DockyardError):
    status = 409


class FencedError(ConflictError):
    """A worker wrote to a run it no longer owns (its lease epoch is stale or the run ended).

    Nothing was written; the worker must stop working on the run (kill its dbt processes).
    """


class StoreError(DockyardError):
    """The run store cannot be reached or is inconsistent."""

    status = 503


class ValueRefusedError(DockyardError):
    """The store cannot hold a value it was given (a NUL byte, a lone surrogate, text longer
    than its column, a number out of range): the request is wrong, not the store, so it is a
    400 and is never retried (unlike :class:`StoreError`)."""


class DbtInvocationError(DockyardError):
    """dbt could not be started or ended abnormally."""

    status = 500


class SetupError(DockyardError):
    """A run could not start: dockyard failed between claiming it and dbt's first event (the
    profiles, a secret, the dbt project, the run folder). The run is recorded ``error`` with
    reason ``setup_failed`` and this message in its first step's log; it is never retried."""


class CancelledError(DockyardError):
    exit_code = 130


# -- one class per condition that several paths (CLI, native API, dbt Cloud API) meet ---------
# Each is raised in one place of the facade (dockyard.app), so every front-end answers the
# same class, HTTP status and message for it (the table is in docs/api.md, "Errors").


class UnknownJobError(NotFoundError):
    """No job with this id, name or identifier (the job the request is about): 404."""


class UnknownRunError(NotFoundError):
    """No run with this id: 404."""


class UnknownEnvironmentError(DockyardError):
    """A request names an environment that dockyard.yml does not have (``--env``, a trigger's
    ``environment``, a run whose environment was removed): 400, the request is wrong.
    (``GET .../environments/{id}`` of an unknown id is a plain :class:`NotFoundError`: the
    resource of the route does not exist.)"""


class RunActiveError(ConflictError):
    """The run is still queued, starting or running, and the operation needs a final run
    (rerun): 409."""


class RunFinalError(ConflictError):
    """The run has already ended, and the operation needs an active one (cancel): 409."""


class NotRerunnableError(ConflictError):
    """The run is final but there is nothing to re-run (it succeeded, or it has no failed
    step to re-run from): 409."""


class RunOverlapError(ConflictError):
    """A foreground run would overlap a run of the same job that is starting or running
    (and the job does not set ``allow_overlap``): 409."""


class QueueFullError(DockyardError):
    """The job already has the most queued runs a trigger may add to (429, Retry-After)."""

    status = 429

    def __init__(self, what: str, *, hint: str | None = None, retry_after: int = 60):
        super().__init__(what, hint=hint or f"retry in {retry_after} s, once some of them have run")
        self.retry_after = retry_after


class RepositoryError(DockyardError):
    """Code from git: the remote, a ref or a commit cannot be used (dockyard.repository)."""


class UnknownCommitError(RepositoryError):
    """A sha that is neither in the cached clone nor fetchable from the remote: 404."""

    status = 404
