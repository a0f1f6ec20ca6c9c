"""dbt's node selection as dockyard rewrites it: the selection flags, taking an option out of
an argument list the way dbt parses it, and a selector matching exactly one node."""

from __future__ import annotations

# --select and its spellings (dbt 1.11: -s, -m, --models, --model are aliases)
SELECT_FLAGS = frozenset({"-s", "--select", "-m", "--models", "--model"})
EXCLUDE_FLAGS = frozenset({"--exclude"})
SELECTOR_FLAGS = frozenset({"--selector"})


def has_selection(args: list[str]) -> bool:
    """Whether a command line selects nodes itself (``--select`` in any spelling, or ``--selector``)."""
    flags = SELECT_FLAGS | SELECTOR_FLAGS
    return any((a.partition("=")[0] if a.startswith("--") else a) in flags for a in args)


def node_selector(unique_id: str, *, indirect_empty: bool = False) -> str | None:
    """A dbt 1.11 selector matching exactly this node, or ``None`` for nodes that cannot be
    selected (hooks: ``operation.*``).

    - sources: ``source:<package>.<source>.<table>``;
    - unit tests: ``unit_test:<package>.<name>,fqn:<model>`` (unit test names are unique
      per model only; the ``fqn:<model>`` part reaches the unit test through dbt's
      indirect selection, so with ``--indirect-selection empty`` it is left out);
    - everything else (models, versioned models as ``name.v2``, seeds, snapshots, data
      tests): ``package:<package>,fqn:<name>``. A bare name would also match a node of
      that name in another package, or a unit test so named; ``<package>.<name>`` only
      matches nodes at the root of their folder (``shop.fct_orders`` selects nothing when
      the file is ``models/marts/fct_orders.sql``).
    """
    parts = unique_id.split(".")
    if len(parts) < 3:
        return None
    rtype, package = parts[0], parts[1]
    if rtype == "operation":
        return None
    if rtype == "source" and len(parts) >= 4:
        return f"source:{package}.{parts[2]}.{'.'.join(parts[3:])}"
    if rtype == "unit_test" and len(parts) >= 4:
        base = f"unit_test:{package}.{parts[3]}"
        return base if indirect_empty else f"{base},fqn:{parts[2]}"
    if rtype == "test":
        name = parts[2]  # test.<package>.<name>[.<hash>]
    else:
        name = ".".join(parts[2:])  # model.<package>.<name>[.v<version>]
    return f"package:{package},fqn:{name}"


def take_option(args: list[str], flags: frozenset[str], multi: bool) -> tuple[list[str], list[str], bool]:
    """Remove every occurrence of an option; returns (other args, its values, found).

    dbt's multi-value options (``--select``, ``--exclude``) take every following argument
    up to the next one starting with ``-``, and split each on spaces."""
    rest: list[str] = []
    values: list[str] = []
    found = False
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in flags:
            rest.append(arg)
            i += 1
            continue
        found = True
        i += 1
        if eq:
            values.extend(inline.split())
        if multi:
            while i < len(args) and not args[i].startswith("-"):
                values.extend(args[i].split())
                i += 1
        elif not eq and i < len(args):
            values.append(args[i])
            i += 1
    return rest, values, found
