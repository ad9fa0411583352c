"""``slm ui``: start the Streamlit app, bound to 127.0.0.1, offline, usage stats off.

Registered under the ``slm.commands`` entry-point group (see pyproject.toml).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ui.uiconfig import DEFAULT_MAX_UPLOAD_MB, ENV_MAX_UPLOAD_MB, ENV_PASSWORD_HASH


def app_path() -> Path:
    """ui/app.py of the installed package (not of the current directory)."""
    import ui

    return Path(ui.__file__).resolve().parent / "app.py"


def streamlit_argv(port: int, app_args: list[str], max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> list[str]:
    """The ``python -m streamlit run`` command line; safety flags do not depend on any config file."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.headless", "true",
        "--server.maxUploadSize", str(max_upload_mb),
        "--server.fileWatcherType", "none",  # no code reloading in use: spares a core on small machines
        "--client.toolbarMode", "minimal",  # no "Deploy" button: nothing here goes to a cloud
        "--", *app_args,
    ]


def _set_password() -> None:
    from ui.auth import hash_password

    password = click.prompt("New UI password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.UsageError("use at least 8 characters")
    click.echo("Put this in the environment of `slm ui` (the password itself is not stored):")
    click.echo(f"export {ENV_PASSWORD_HASH}='{hash_password(password)}'")


@click.command("ui")
@click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
              help="collection (index folder) to open; its parent folder lists the others (default var/index/default)")
@click.option("--collections", type=click.Path(file_okay=False), default=None,
              help="folder whose sub-folders are the collections (default var/index)")
@click.option("--port", type=int, default=8501, show_default=True)
@click.option("--domain", default=None, help="domain pack to start with (default: the collection's own)")
@click.option("--models", "models_dir", type=click.Path(file_okay=False), default=None,
              help="folder of .gguf models offered in the model picker (default ./models)")
@click.option("--set-password", is_flag=True, help="prompt for a password and print the hash to configure")
@click.pass_context
def ui_command(ctx: click.Context, index_dir: str | None, collections: str | None, port: int, domain: str | None,
               models_dir: str | None, set_password: bool) -> None:
    """Open the chat and document manager in the browser (http://127.0.0.1:PORT)."""
    if set_password:
        _set_password()
        return
    if not 1 <= port <= 65535:
        raise click.BadParameter("must be 1-65535", param_hint="--port")
    args: list[str] = []
    for flag, value in (("--index", index_dir), ("--collections", collections), ("--models", models_dir)):
        if value:
            args += [flag, str(Path(value).resolve())]
    if domain:
        args += ["--domain", domain]
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    config = (ctx.find_root().obj or {}).get("config")
    if config:
        env["SLM_CONFIG"] = str(Path(config).resolve())
    try:
        max_mb = int(env.get(ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB))
    except ValueError:
        raise click.BadParameter(f"{ENV_MAX_UPLOAD_MB} must be a number of megabytes") from None
    argv = streamlit_argv(port, args, max_mb)
    click.secho(f"slm ui: http://127.0.0.1:{port}  (Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    # Replace this process: a signal to `slm ui` reaches Streamlit directly, no orphan server.
    os.execve(sys.executable, argv, env)
