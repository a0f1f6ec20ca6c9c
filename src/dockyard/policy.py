"""The API command policy: what an API caller may make dockyard run.

A token lets its holder run the project's jobs, never new code: what it may ask for is a
job's own kind of work on other nodes (dbt Cloud's ``steps_override``, the commands of
jobs created through the API). So commands from the API are checked against an
allow-list, on the parsed argument vector (:attr:`DbtCommand.args`, never the string):

- the subcommand is one of :data:`SUBCOMMANDS`;
- every other token is an allowed long option (:data:`MULTI_VALUE`, :data:`ONE_VALUE`,
  :data:`SWITCHES`, as ``--flag value`` or ``--flag=value``) or a value of one: a token
  that is neither (a positional argument, a short option such as ``-s``, any other option
  such as ``--vars``, ``--state``, ``--inline``, ``--args``, ``--output``) is refused.

Selection values are node selectors: they choose nodes of the project (``path:`` and
``file:`` match the project's own files) and read nothing else.

The same caller may also not move a job to another environment, or to another output of
the profile (other credentials): see :func:`check_environment` and :func:`may_switch_target`.

Admin tokens are held to the policy too unless ``server.api_admin_unrestricted`` is on
(:func:`unrestricted`); then a command only has to be a plain dbt command
(:func:`dockyard.dbt.command.parse_command`). Jobs in ``dockyard.yml`` are the project
author's and are not checked. Refusals are :class:`ForbiddenError` (403).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dockyard.dbt.command import DbtCommand, parse_command
from dockyard.errors import ForbiddenError

SETTING = "server.api_admin_unrestricted"
#: The key an API job's stored definition gets when an unrestricted admin saved it.
TRUSTED = "saved_unrestricted"

#: dbt subcommands (``DbtCommand.name``) an API caller may run: the ones dbt Cloud's clients use.
SUBCOMMANDS = frozenset(
    {
        "build",
        "run",
        "test",
        "seed",
        "snapshot",
        "source freshness",
        "compile",
        "docs generate",
        "parse",
        "ls",
        "list",
    }
)

#: Options that take every following token up to the next option (dbt's ``MultiOption``).
MULTI_VALUE = frozenset(
    {
        "--select",
        "--models",
        "--model",
        "--exclude",
        "--resource-type",
        "--resource-types",
        "--exclude-resource-type",
        "--exclude-resource-types",
    }
)


def _threads(value: str) -> str | None:
    return None if value.isascii() and value.isdigit() and 1 <= int(value) <= 64 else "a number of threads from 1 to 64"


def _indirect(value: str) -> str | None:
    return (
        None
        if value.lower() in ("eager", "cautious", "buildable", "empty")
        else "one of eager, cautious, buildable, empty"
    )


def _name(value: str) -> str | None:
    return None if value and not value.startswith("-") else "the name of a selector in selectors.yml"


#: Options that take exactly one value, with the check of that value (None: fine).
ONE_VALUE: dict[str, Callable[[str], str | None]] = {
    "--selector": _name,
    "--indirect-selection": _indirect,
    "--threads": _threads,  # as threads_override: 1 to 64
}

#: On/off options (no value). ``--no-`` forms only turn the behaviour off, which is harmless.
SWITCHES = frozenset({"--full-refresh", "--fail-fast", "--no-fail-fast", "--empty", "--no-empty"})

#: Short spellings of allowed options, for the hint of a refusal (short options are refused:
#: click lets them be clustered and glued to their value, e.g. ``-sfoo`` or ``-xs``).
LONG_FORMS = {"-s": "--select", "-m": "--models", "-x": "--fail-fast", "-f": "--full-refresh"}


def unrestricted(scope: str, server) -> bool:
    """Whether a caller of this scope is exempt from the policy (an admin, with the setting on)."""
    return scope == "admin" and bool(getattr(server, "api_admin_unrestricted", False))


def how_to_proceed() -> str:
    return f"put the command in a job in dockyard.yml, or use an admin token with {SETTING}: true"


def _refuse(field: str, command: DbtCommand, token: str, why: str, hint: str | None = None) -> ForbiddenError:
    text = command.text if len(command.text) <= 200 else command.text[:200] + "..."
    return ForbiddenError(
        f"{field}: {token[:100]!r} in {text!r} is not allowed from the API ({why})",
        hint=f"{hint}; or {how_to_proceed()}" if hint else how_to_proceed(),
    )


def check_command(command: DbtCommand, *, field: str = "steps_override") -> None:
    """Raise :class:`ForbiddenError` unless every token of ``command.args`` is allowed."""
    if command.name not in SUBCOMMANDS:
        raise _refuse(field, command, command.name, "the API runs " + ", ".join(sorted(SUBCOMMANDS)))
    args = list(command.args[len(command.name.split()) :])
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("-"):
            raise _refuse(field, command, token, "a positional argument; selections go after --select")
        if not token.startswith("--"):
            long = LONG_FORMS.get(token[:2])
            raise _refuse(
                field,
                command,
                token,
                "short options are refused",
                hint=f"write {long} instead of {token[:2]}" if long else None,
            )
        flag, eq, value = token.partition("=")
        if flag in SWITCHES:
            if eq:
                raise _refuse(field, command, token, f"{flag} takes no value")
        elif flag in MULTI_VALUE:
            while i < len(args) and not args[i].startswith("-"):
                i += 1  # node selectors or resource types, up to the next option (as dbt reads them)
        elif flag in ONE_VALUE:
            if not eq:
                if i >= len(args) or args[i].startswith("-"):
                    raise _refuse(field, command, flag, "it needs a value")
                value = args[i]
                i += 1
            if problem := ONE_VALUE[flag](value):
                raise _refuse(field, command, f"{flag} {value}", f"{flag} takes {problem}")
        else:
            raise _refuse(
                field, command, flag, "options allowed: " + ", ".join(sorted(MULTI_VALUE | SWITCHES | set(ONE_VALUE)))
            )


def check_commands(
    texts: Iterable[str], *, free: bool, field: str = "steps_override", trusted: Iterable[str] = ()
) -> None:
    """Check commands given through the API: ``free`` callers (:func:`unrestricted`) only
    need plain dbt commands (already checked by ``parse_command``); ``trusted`` commands
    (a dockyard.yml job's own) are not checked."""
    if free:
        return
    known = set(trusted)
    for text in texts:
        if text not in known:
            check_command(parse_command(text), field=field)


def check_environment(requested: str | None, own: str, *, free: bool) -> None:
    """A job runs in its own environment unless an unrestricted admin asks for another one."""
    if requested is not None and requested != own and not free:
        raise ForbiddenError(
            f"environment: job runs in {own!r}; running it in {requested!r} (other credentials, other data) "
            "is not allowed from the API",
            hint=f"add a job for {requested!r} in dockyard.yml, or use an admin token with {SETTING}: true",
        )


def trusted_job(definition: dict, server) -> bool:
    """A dockyard.yml job (the project author's), or a job an unrestricted admin saved through
    the API (marked :data:`TRUSTED`) while the setting is still on: its own commands run
    without the policy, and its ``settings.target_name`` may name another output.
    ``definition`` is the stored job's: its ``source`` says where the job came from."""
    if definition.get("source") != "api":
        return True
    return bool(definition.get(TRUSTED)) and bool(getattr(server, "api_admin_unrestricted", False))


def trusted_commands(job) -> list[str]:
    """What a trusted job runs by itself (its commands and the steps its settings add)."""
    return [*job.all_commands, "dbt source freshness", "dbt docs generate"]
