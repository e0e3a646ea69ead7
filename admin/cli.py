"""The `switchboard-admin` command: every group under one roof, `--help` everywhere."""

from __future__ import annotations

import typer

from admin import agents, config, export, faq, manifest, sessions, simulate

app = typer.Typer(
    name="switchboard-admin",
    help="Switchboard's admin tools: check and draw the configuration, build and publish the "
         "Teams app package, dry-run pipelines, look at sessions, agents and what the FAQ "
         "answered. Settings come from the same environment variables as the bot (see README).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config.app, name="config")
app.add_typer(manifest.app, name="manifest")
app.command("simulate")(simulate.simulate)
app.add_typer(sessions.app, name="sessions")
app.add_typer(agents.app, name="agents")
app.add_typer(faq.app, name="faq")
sessions.app.command("export")(export.export)


def main() -> None:
    app(prog_name="switchboard-admin")
