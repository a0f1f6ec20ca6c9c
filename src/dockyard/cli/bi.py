"""BI tools and catalogs: ``dockyard export lookml``, ``dockyard export catalog`` (on the
``export`` sub-app of :mod:`dockyard.cli.export`) and ``dockyard sync metabase``
(docs/bi.md, docs/integrations.md#catalogs)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from dockyard.cli.app import ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import handle_errors
from dockyard.cli.export import _write, export_app
from dockyard.text import escape

sync_app = typer.Typer(no_args_is_help=True, help="Push the dbt project's descriptions to other tools.")
cli.add_typer(sync_app, name="sync")

EnvOpt = Annotated[
    str | None,
    typer.Option("--env", help="Read the newest successful artifacts of this environment (default: the newest run's)."),
]


def _environment(catalog, env: str | None) -> str:
    return env or catalog.newest_environment()


@export_app.command("lookml")
@handle_errors
def export_lookml(
    select: Annotated[
        str | None,
        typer.Option("--select", "-s", help="Models: names, tag:<tag>, path:<folder> (default: models under marts/)."),
    ] = None,
    dest: Annotated[
        Path, typer.Option("--out", "-o", help="The folder to write views/ and explores.lkml into.")
    ] = Path("lookml"),
    env: EnvOpt = None,
    config: ConfigOpt = None,
) -> None:
    """LookML views (columns typed from catalog.json, descriptions, meta.looker) and an
    explore per mart, from the newest successful run's artifacts."""
    from dockyard.app import lookml
    from dockyard.app.catalog import Catalog

    app = _app(config)
    try:
        catalog = Catalog(app)
        env = _environment(catalog, env)
        manifest = catalog.load(env, "manifest.json")
        types = catalog.load(env, "catalog.json", required=False)
    finally:
        app.close()
    uids = lookml.select(manifest, select)
    if not uids:
        from dockyard.errors import DockyardError

        raise DockyardError("no model selected", hint="--select names, tag:<tag> or path:<folder>")
    for path in lookml.write(dest, lookml.render(manifest, types, uids)):
        typer.echo(f"wrote {path}", err=True)
    if types is None:
        typer.echo("no catalog.json in a successful run: column types are the manifest's (dbt docs generate)", err=True)


@export_app.command("catalog")
@handle_errors
def export_catalog(
    dest: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")] = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A portable JSON catalog: models, seeds, snapshots and sources with columns, types,
    descriptions, owners, tags, meta, lineage and last run status."""
    from dockyard.app.catalog import Catalog

    app = _app(config)
    try:
        catalog = Catalog(app)
        document = catalog.export(_environment(catalog, env))
    finally:
        app.close()
    _write(json.dumps(document, indent=2, sort_keys=True) + "\n", dest)


@sync_app.command("metabase")
@handle_errors
def sync_metabase(
    url: Annotated[str, typer.Option("--url", help="Metabase's address, e.g. https://metabase.example.com.")],
    token: Annotated[
        str, typer.Option("--token", help="The API key, by reference: env:NAME or file:PATH.")
    ] = "env:METABASE_API_KEY",
    database: Annotated[
        str | None, typer.Option("--database", help="The Metabase database's name (when it has several).")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Write the changes (default: print them only).")] = False,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Model and column descriptions and meta.metabase display names into Metabase: a dry
    run printing the changes, unless --apply."""
    from dockyard.app.catalog import Catalog
    from dockyard.app.metabase import MetabaseSync
    from dockyard.errors import DockyardError
    from dockyard.secrets import is_reference, read_reference

    if not is_reference(token):
        raise DockyardError("--token must be a reference such as env:METABASE_API_KEY", hint="never the key itself")
    app = _app(config)
    try:
        catalog = Catalog(app)
        manifest = catalog.load(_environment(catalog, env), "manifest.json")
    finally:
        app.close()
    try:
        key = read_reference(token)
    except Exception as exc:  # noqa: BLE001 - UnreadableSecret: say which reference, never a value
        raise DockyardError(f"cannot read --token {token.split(':', 1)[0]}: reference", hint=str(exc)) from None
    sync = MetabaseSync(url, key)
    try:
        changes = sync.plan(manifest, database)
        requests = sync.apply(changes) if apply else 0
    finally:
        sync.close()
    if as_json:
        _emit({"applied": apply, "requests": requests, "changes": [asdict(c) for c in changes]})
        return
    for c in changes:
        out.print(
            f"{c.kind} {escape(c.label)}: {c.key} {escape(repr(c.old or ''))} -> {escape(repr(c.new))}", markup=False
        )
    if not changes:
        out.print("Metabase is up to date", markup=False)
    elif apply:
        out.print(f"applied {len(changes)} changes ({requests} requests)")
    else:
        out.print(f"{len(changes)} changes; run again with --apply to write them")
