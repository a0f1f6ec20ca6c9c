"""``dockyard ci --pr N`` (build a pull request, slim) and ``dockyard ci cleanup --pr N`` (drop
its schema): thin over ``app.ci`` and :mod:`dockyard.ci.reporter` (docs/ci.md)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from dockyard.cli.app import EXIT, ConfigOpt, JsonOpt, _app, _emit, cli, out
from dockyard.cli.errors import err_console, handle_errors
from dockyard.cli.progress import Progress
from dockyard.cli.render import TerminalConsole, cell, styled

ci = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    help="Slim CI of a pull request: build what it changed in its own schema; cleanup drops the schema.",
)
cli.add_typer(ci, name="ci")

PrOpt = Annotated[int | None, typer.Option("--pr", min=1, help="The pull (merge) request number.")]
EnvOpt = Annotated[str | None, typer.Option("--env", help="The CI environment (default: ci.environment).")]


def _hide(*values: str | None) -> None:
    from dockyard.environ import hide_in_argv

    for value in values:
        hide_in_argv(value)


@ci.callback(invoke_without_command=True)
@handle_errors
def build(
    ctx: typer.Context,
    pr: PrOpt = None,
    env: EnvOpt = None,
    base: Annotated[str | None, typer.Option("--base", help="Whose last good manifest is the state.")] = None,
    sha: Annotated[str | None, typer.Option("--sha", help="The PR's head commit (its status is set).")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="The PR's head branch.")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="A folder holding the base manifest.json.")] = None,
    server: Annotated[str | None, typer.Option("--server", help="A dockyard server to get the state from.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="API token for --server (default: $DOCKYARD_TOKEN).")
    ] = None,
    summary_file: Annotated[Path | None, typer.Option("--summary", help="Write the markdown summary here.")] = None,
    github_repo: Annotated[
        str | None, typer.Option("--github-repo", help="Comment and set the status on GitHub (OWNER/NAME).")
    ] = None,
    gitlab_project: Annotated[
        str | None, typer.Option("--gitlab-project", help="Note and set the status on GitLab (GROUP/NAME or id).")
    ] = None,
    github_token: Annotated[
        str | None, typer.Option("--github-token", help="GitHub token (default: ci.github.token, $GITHUB_TOKEN).")
    ] = None,
    gitlab_token: Annotated[
        str | None, typer.Option("--gitlab-token", help="GitLab token (default: ci.gitlab.token, $GITLAB_TOKEN).")
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not echo dbt's log lines.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Build pull request --pr N: state:modified+ in its PR schema, deferring to the base
    environment; post the summary when asked. Exit 0 when the build passed, 1 when it failed."""
    if ctx.invoked_subcommand:
        return
    if pr is None:
        from dockyard.errors import DockyardError

        raise DockyardError("dockyard ci needs --pr N", hint="give the pull request's number: dockyard ci --pr 12")
    _hide(token, github_token, gitlab_token)
    from dockyard.ci import reporter, summary
    from dockyard.environ import seal_process
    from dockyard.errors import DockyardError

    token = token or os.environ.get("DOCKYARD_TOKEN")
    app = _app(config)
    # posts when asked (--github-repo / --gitlab-project); ci.github.repo alone is the server's (the sink)
    posting = "github" if github_repo else "gitlab" if gitlab_project else None
    provider = posting or reporter.provider_of(app) or "github"
    post_to = {"github_repo": github_repo, "gitlab_project": gitlab_project}
    post_token = github_token if provider == "github" else gitlab_token
    seal_process()  # dbt steps must not read this process's environment (/proc/<pid>/environ)
    if posting:
        pending = {"pr": pr, "provider": provider, "sha": sha, "environment": env or app.config.ci.environment}
        _try_post(lambda: reporter.post(app, pending, None, **post_to, token=post_token, pending=True))
    console = TerminalConsole(stderr=True, highlight=False) if as_json else out
    console.print(Text(f"CI of pull request #{pr}", style="bold"))
    progress = Progress(console, [], echo_logs=not (as_json or quiet))
    previous = signal.getsignal(signal.SIGINT)

    def on_start(run_id, executor):
        def cancel(signum, frame):  # Ctrl-C, or the CI system cancelling the job (SIGTERM)
            console.print(Text("Cancelling: stopping dbt", style="yellow"))
            executor.cancel()

        signal.signal(signal.SIGINT, cancel)
        signal.signal(signal.SIGTERM, cancel)
        progress.commands = [s.command for s in executor.plan.steps]

    try:
        with progress:
            result = app.ci.build(
                pr,
                env=env,
                base=base,
                sha=sha,
                branch=branch,
                state=state,
                server=server,
                token=token,
                provider=provider,
                observer=progress,
                on_start=on_start,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    report = reporter.merged({"pr": pr, "provider": provider, **(result.report or {})}, result.run)
    report.setdefault("schema", result.schema)
    report.setdefault("selected", result.selected)
    report.setdefault("deleted", result.deleted)
    if summary_file is not None:
        text = summary.render(report, link=reporter.run_link(app, result.run.id))
        try:
            summary_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise DockyardError(f"cannot write {summary_file}: {exc.strerror}", hint="check the folder") from None
    posted_ok = True
    if posting:
        posted_ok = _try_post(lambda: reporter.post(app, report, result.run, **post_to, token=post_token))
    if as_json:
        from dockyard.views import run_dict

        _emit({**run_dict(result.run), "schema": result.schema, "selected": result.selected, "deleted": result.deleted})
    else:
        _show(result, report)
    code = EXIT.get(result.run.status, 1)
    raise typer.Exit(code if code or posted_ok else 1)


def _try_post(call) -> bool:
    """Post; a provider's failure is printed, not raised (the build's outcome still counts)."""
    from dockyard.ci.rest import ProviderError

    try:
        call()
        return True
    except ProviderError as exc:
        err_console.print(Text.assemble(("Error:", "bold red"), " ", exc.render()))
        return False


def _show(result, report: dict) -> None:
    run = result.run
    out.print(
        Text.assemble(
            f"Run {run.id}: ",
            styled(run.status.value),
            f" in schema {result.schema}, {len(result.selected)} selected, {len(result.deleted)} deleted",
        )
    )
    if result.selected:
        table = Table(box=None, header_style="bold")
        for col in ("node", "why"):
            table.add_column(col, overflow="fold")
        for node in result.selected:
            table.add_row(cell(node.get("unique_id")), cell(node.get("reason")))
        out.print(table)
    failed = [
        n
        for n in report.get("results") or report.get("nodes") or []
        if n.get("status") in ("error", "fail", "runtime error")
    ]
    for node in failed:
        out.print(Text.assemble(("✗ ", "red"), cell(node.get("unique_id")), ": ", cell(node.get("message") or "")))


@ci.command("cleanup")
@handle_errors
def cleanup(
    pr: Annotated[int, typer.Option("--pr", min=1, help="The pull (merge) request number.")],
    env: EnvOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Drop the pull request's schema(s) in the warehouse (its custom-schema variants too)."""
    dropped = _app(config).ci.cleanup(pr, env)
    if as_json:
        return _emit({"pr": pr, "dropped": dropped})
    if not dropped:
        out.print(f"Nothing to drop for pull request #{pr}.")
    for schema in dropped:
        out.print(Text.assemble("Dropped schema ", cell(schema)))
