"""`config validate` and `config draw`: check the tenants' configuration, and picture it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from admin.common import PROBLEMS, USAGE, err, fail, out

app = typer.Typer(
    rich_markup_mode=None,
    help="Check and draw the tenants' configuration (YAML or JSON).",
    no_args_is_help=True,
)

FORMATS = ("svg", "png", "pdf", "dot", "gv")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="The configuration file (YAML or JSON).")],
) -> None:
    """Check FILE completely: every problem at once, each naming the file, tenant, pipeline
    and stage. Exit 0 when valid (warnings are printed), 1 when not."""
    from pipelines.loader import ConfigError, load_config

    try:
        config, warnings = load_config(file)
    except ConfigError as exc:
        for problem in exc.problems:
            err(f"error: {problem}")
        count = len(exc.problems)
        err(f"{file}: {count} problem{'s' if count != 1 else ''}: the bot would refuse to start")
        raise typer.Exit(PROBLEMS) from None
    from pipelines.http_steps import environment_problems

    # http_request stages' URLs and secrets, as this shell's environment holds them (the
    # bot refuses to start without a secret, and checks a URL variable like a `url`)
    env_errors, env_notes = environment_problems(config, file=str(file))
    warnings = [*warnings, *env_notes,
                *(f"{e} (the bot would refuse to start)" for e in env_errors)]
    for warning in warnings:
        err(f"warning: {warning}")
    stages = sum(len(p.stages) for t in config.tenants for p in t.pipelines)
    pipelines = sum(len(t.pipelines) for t in config.tenants)
    out(
        f"{file}: valid: {len(config.tenants)} tenants, {pipelines} pipelines, {stages} stages; "
        f"new chats start in {config.primary.name!r}"
        + (f"; {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else "")
    )


@app.command()
def draw(
    file: Annotated[Path, typer.Argument(help="The configuration file (YAML or JSON).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o",
                     help="Where to write the picture: .svg, .png or .pdf (or .dot for the "
                          "Graphviz source). Default: FILE's name with .svg, here."),
    ] = None,
) -> None:
    """Draw each tenant's pipelines: stages, branches with their labels, timeouts, and the
    transfers between tenants as edges between the tenants' clusters."""
    from admin.common import load_config_or_exit
    from admin.drawing import config_graph, render

    target = output or Path(file.with_suffix(".svg").name)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise fail(f"{target}: unknown picture format {target.suffix!r}: use .svg, .png, .pdf or "
                   f".dot", USAGE)
    config = load_config_or_exit(file)
    graph = config_graph(config)
    try:
        data = render(graph, fmt)
    except Exception as exc:  # graphviz.ExecutableNotFound, or dot failing
        if type(exc).__name__ == "ExecutableNotFound":
            raise fail("Graphviz's `dot` program is not installed: install it (Debian/Ubuntu: "
                       "apt-get install graphviz; macOS: brew install graphviz), or write the "
                       "source with -o FILE.dot") from None
        raise fail(f"Graphviz could not draw it: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    out(f"wrote {target}")
