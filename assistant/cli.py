"""The ``slm`` command. Commands are thin: parse, call the library, print.

Commands from other packages (``slm ingest``, ``slm ui`` ...) register under the
``slm.commands`` entry-point group and are imported only when used.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from importlib.metadata import entry_points
from typing import Any

import click

from assistant.errors import AssistantError
from assistant.text import where

log = logging.getLogger("assistant")


class LazyGroup(click.Group):
    """A click group that also lists commands registered as entry points."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="slm.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self._plugins():
            cmd = self._plugins()[name].load()
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AssistantError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="settings file (default ./slm.toml)")
@click.option("-v", "--verbose", count=True, help="-v: info, -vv: debug logs on stderr")
@click.pass_context
def main(ctx: click.Context, config: str | None, verbose: int) -> None:
    """slm: ask questions of your own documents, answered and cited locally."""
    from assistant.models import force_offline

    force_offline()
    if verbose:
        from assistant.redaction import RedactingFilter

        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(RedactingFilter())  # logs never carry personal identifiers
        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s", handlers=[handler])
    ctx.obj = {"config": config}


def settings_from(ctx: click.Context, **overrides: Any) -> Any:
    """The settings for a command: config file, env, then the command's flags."""
    from assistant.settings import load_settings, with_overrides

    obj = ctx.find_root().obj or {}
    return with_overrides(load_settings(obj.get("config")), **overrides)


index_option = click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
                            help="index folder (default: index.dir setting)")
domain_option = click.option("--domain", default=None, help="domain pack: general, medical, legal, finance or a .toml file")


def _open(ctx: click.Context, index_dir: str | None, domain: str | None, **overrides: Any) -> Any:
    from assistant.engine import Assistant

    s = settings_from(ctx, index={"dir": index_dir} if index_dir else {}, domain=domain, **overrides)
    return Assistant.open(settings=s, domain=domain)  # no --domain: the index's own (see Assistant.open)


def _hit_json(h: Any) -> dict[str, Any]:
    d = asdict(h)
    d["doc_meta"] = dict(h.doc_meta)
    return d


def answer_json(answer: Any) -> dict[str, Any]:
    return {
        "question": answer.question, "answer": answer.text, "abstained": answer.abstained, "mode": answer.mode,
        "citations": [asdict(c) for c in answer.citations],
        "sentences": [asdict(s) for s in answer.sentences],
        "unsupported": list(answer.unsupported), "disclaimer": answer.disclaimer,
        "timings": asdict(answer.timings), "hits": [_hit_json(h) for h in answer.hits],
    }


def print_answer(answer: Any, streamed: bool) -> None:
    """The verified answer (after the streamed draft, if any), citations, flags and timings."""
    from assistant.text import squash

    if streamed:
        click.echo()
        if answer.abstained:
            click.secho("The draft above is not supported by your documents; disregard it.", fg="yellow")
        else:  # the checked text: citation numbers verified, unsupported sentences marked below
            click.secho("Answer, checked against the sources:", bold=True)
    click.secho(answer.text, bold=answer.abstained)
    if answer.abstained:
        if answer.hits:
            click.secho("Closest passages:", bold=True)
            for i, h in enumerate(answer.hits[:3], start=1):
                click.echo(f"  ({i}) {where(h.source, h.page)}: \"{squash(h.text)[:200]}\"")
    else:
        click.secho("Sources:", bold=True)
        for c in answer.citations:
            click.echo(f"  [{c.n}] {where(c.source, c.page)}: \"{squash(c.quote)}\"")
        for s in answer.unsupported:
            click.secho(f"  unsupported: {s}", fg="yellow")
    t = answer.timings
    ttft = f", first token {t.first_token_ms / 1000:.1f} s" if t.first_token_ms else ""
    tps = f", {t.tokens_per_s:.0f} tok/s" if t.tokens_per_s else ""
    click.secho(f"({answer.disclaimer} Retrieval {t.retrieval_ms:.0f} ms{ttft}{tps}.)", dim=True)


def run_stream(asst: Any, question: str, history: list[tuple[str, str]], **kwargs: Any) -> Any:
    """Stream an answer to the terminal: evidence first, then tokens, then citations."""
    from assistant.types import Answer, Evidence, Token

    answer = None
    streamed = False
    for event in asst.stream(question, history=history, **kwargs):
        if isinstance(event, Evidence) and event.hits:
            h = event.hits[0]
            click.secho(f"Searching... best match: {where(h.source, h.page)} ({event.retrieval_ms:.0f} ms)", dim=True, err=True)
        elif isinstance(event, Token):
            if not streamed:
                click.secho("Draft: ", dim=True, nl=False)
            click.secho(event.text, nl=False, dim=True)
            sys.stdout.flush()
            streamed = True
        elif isinstance(event, Answer):
            answer = event
    print_answer(answer, streamed)
    return answer


@main.command()
@click.argument("question")
@index_option
@domain_option
@click.option("-k", type=int, default=None, help="passages to retrieve")
@click.option("--extractive", is_flag=True, help="quotes only, no generated text")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@click.pass_context
def ask(ctx: click.Context, question: str, index_dir: str | None, domain: str | None, k: int | None,
        extractive: bool, as_json: bool) -> None:
    """Answer QUESTION from the indexed documents, with cited pages."""
    with _open(ctx, index_dir, domain, retrieval={"k": k}) as asst:
        if as_json:
            click.echo(json.dumps(answer_json(asst.ask(question, extractive=extractive or None)), indent=2, ensure_ascii=False))
        else:
            run_stream(asst, question, [], extractive=extractive or None)


@main.command()
@click.argument("question")
@index_option
@domain_option
@click.option("-k", type=int, default=None)
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def retrieve(ctx: click.Context, question: str, index_dir: str | None, domain: str | None, k: int | None,
             mode: str | None, as_json: bool) -> None:
    """Show the passages that best match QUESTION (no generation)."""
    from assistant.text import squash

    with _open(ctx, index_dir, domain) as asst:
        hits = asst.retrieve(question, k, mode=mode)
    if as_json:
        click.echo(json.dumps([_hit_json(h) for h in hits], indent=2, ensure_ascii=False))
        return
    for i, h in enumerate(hits, start=1):
        sim = f" sim {h.similarity:.2f}" if h.similarity is not None else ""
        click.echo(f"({i}) {where(h.source, h.page)}  score {h.score:.4f}{sim}")
        click.echo(f"    {squash(h.text)[:300]}")


@main.command()
@index_option
@domain_option
@click.pass_context
def chat(ctx: click.Context, index_dir: str | None, domain: str | None) -> None:
    """A multi-turn chat in the terminal (follow-up questions use the history)."""
    history: list[tuple[str, str]] = []
    with _open(ctx, index_dir, domain) as asst:
        click.secho(f"Chatting with {asst.store.directory} ({asst.domain.title}). Empty line or Ctrl-D quits.", dim=True)
        while True:
            try:
                question = click.prompt("you", default="", show_default=False, prompt_suffix="> ")
            except (EOFError, click.Abort):
                break
            if not question.strip():
                break
            try:
                answer = run_stream(asst, question, history)
            except AssistantError as exc:
                click.secho(f"error: {exc}", fg="red", err=True)
                continue
            if not answer.abstained:
                history.append((question, answer.text))


@main.group()
def config() -> None:
    """Inspect settings."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings (defaults < slm.toml < SLM_* env)."""
    s = settings_from(ctx)
    data = json.loads(s.model_dump_json())
    if s.llm.api_key:
        data["llm"]["api_key"] = "***"
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for section, values in data.items():
        if isinstance(values, dict):
            click.echo(f"[{section}]")
            for key, value in values.items():
                click.echo(f"{key} = {json.dumps(value)}")
            click.echo()
        else:
            click.echo(f"{section} = {json.dumps(values)}")


@main.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Report what is installed and found (models, packages, index)."""
    from assistant.doctor import checks

    failed = 0
    for ok, name, detail in checks(settings_from(ctx)):
        click.echo(f"{click.style('ok  ' if ok else 'FAIL', fg='green' if ok else 'red')} {name}: {detail}")
        failed += not ok
    ctx.exit(1 if failed else 0)


@main.command()
@click.option("--rag", is_flag=True, help="serve the assistant (answers with citations from --index), not the bare model")
@click.option("--index", "indexes", multiple=True, metavar="[NAME=]DIR",
              help="with --rag: an index to serve as model NAME (default: the folder's name); repeatable")
@domain_option
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="bind address (keep 127.0.0.1 unless behind a proxy)")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None, help="GGUF file (default: configured model)")
@click.option("--api-key", default=None, envvar="SLM_SERVE_API_KEY", help="require this bearer token [env SLM_SERVE_API_KEY]")
@click.pass_context
def serve(ctx: click.Context, rag: bool, indexes: tuple[str, ...], domain: str | None, port: int, host: str,
          model_path: str | None, api_key: str | None) -> None:
    """Serve over the OpenAI chat-completions protocol.

    Plain: the language model itself (llama-cpp-python's server). With --rag: the
    assistant, answering from your indexes with citations (see README, "OpenAI-compatible server").
    """
    s = settings_from(ctx, llm={"model_path": model_path} if model_path else {})
    if api_key is not None and not api_key.strip():
        raise click.BadParameter("the API key is empty; give a real key or leave the option out", param_hint="--api-key")
    if not api_key and host not in ("127.0.0.1", "localhost", "::1"):
        raise click.BadParameter(f"{host} would let other machines use the server without a key; add --api-key "
                                 "(and TLS through a reverse proxy, see SECURITY.md)", param_hint="--host")
    if not rag:
        if indexes or domain:
            raise click.UsageError("--index and --domain need --rag (the plain server serves only the model)")
        from assistant.serve import run_model_server

        run_model_server(s, host=host, port=port, api_key=api_key)
        return
    from assistant.rag_server import open_collections, run_rag_server

    collections = open_collections(s, list(indexes) or [str(s.index.dir)], domain=domain)
    run_rag_server(collections, host=host, port=port, api_key=api_key)


def entrypoint() -> None:  # pragma: no cover
    main(prog_name="slm")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="slm")
