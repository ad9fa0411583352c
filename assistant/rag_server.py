"""``slm serve --rag``: the assistant itself over the OpenAI chat-completions protocol.

Any OpenAI client or chat front end can ask questions of a local index. Each served
index is a "model" (its name is the collection's name). The response is the
*verified* answer: ``choices[0].message.content`` holds the answer text followed by
its sources, and the top-level ``citations`` field carries them as data::

    {"id": "chatcmpl-…", "object": "chat.completion", "model": "legal",
     "choices": [{"index": 0, "message": {"role": "assistant", "content": "…"},
                  "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 480, "completion_tokens": 31, "total_tokens": 511},
     "citations": [{"n": 1, "source": "1547.txt", "page": 12, "quote": "…",
                    "char_start": 1024, "char_end": 1101, "score": 0.81}],
     "slm": {"abstained": false, "mode": "generate", "disclaimer": "…",
             "unsupported": [], "passages": [{"source": …, "page": …, "text": …}]}}

With ``stream: true`` the same answer arrives as ``chat.completion.chunk`` events;
the last chunk (the one with ``finish_reason``) carries ``citations`` and ``slm``.
The answer is verified against the sources before any of it is sent: a draft the
verifier withdraws never reaches the client (the role chunk goes out at once so
clients see the request accepted).

Client ``system`` messages are ignored: the domain's system prompt governs answers.
Earlier user/assistant turns are the conversation history.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.engine import Assistant, check_question
from assistant.errors import ConfigError, ContextOverflow, InvalidQuestion
from assistant.settings import Settings, with_overrides
from assistant.text import squash, where
from assistant.types import Answer

log = logging.getLogger(__name__)

# Everything the server appends to an answer (sources, closest passages, notes, disclaimer)
# follows this rule; when a client sends the answer back as history, it is cut there.
APPENDIX = "\n\n---\n"
MAX_PENDING = 16  # chat requests answered or waiting at once; more get 429 (the model answers one at a time)


@dataclass(frozen=True)
class Collection:
    """One served index: the OpenAI "model" named ``name``."""

    name: str
    assistant: Assistant


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat-completions request this server uses (others are ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1)
    citations_in_content: bool = True  # False: content is the bare answer (citations only in the field)


Checked = tuple[Collection, str, list[tuple[str, str]]]  # a request's collection, question and history


class ApiError(Exception):
    """An error returned in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str | None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def internal_error(exc: BaseException) -> ApiError:
    """A failure the client cannot fix: details go to the server log (never the question), not to the client."""
    log.error("request failed: %s", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
    return ApiError(500, "the assistant failed to answer; the server log has the details", "internal_error",
                    "server_error")


def _text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text (content parts of type "text" joined; images etc. ignored)."""
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def conversation(messages: list[_Message]) -> tuple[str, list[tuple[str, str]]]:
    """The question (last user message) and the earlier (question, answer) turns."""
    if messages[-1].role != "user":
        raise ApiError(400, "the last message must be the user's question", "invalid_messages")
    turns: list[tuple[str, str]] = []
    pending: str | None = None
    for m in messages[:-1]:
        if m.role == "user":
            pending = _text(m.content)
        elif m.role == "assistant" and pending is not None:
            # Our answers come back with sources or passages appended: the history takes only the answer.
            turns.append((pending, _text(m.content).split(APPENDIX, 1)[0]))
            pending = None
    return _text(messages[-1].content), turns


def content_of(answer: Answer, with_sources: bool) -> str:
    """The message content: the answer, then its sources (or the closest passages when abstaining)."""
    if not with_sources:
        return answer.text
    if answer.abstained:
        lines = [f"- {where(h.source, h.page)}: \"{squash(h.text)[:200]}\"" for h in answer.hits[:3]]
        return answer.text + (APPENDIX + "Closest passages:\n" + "\n".join(lines) if lines else "")
    lines = [f"[{c.n}] {where(c.source, c.page)}: \"{squash(c.quote)}\"" for c in answer.citations]
    lines += [f"(unsupported: {s})" for s in answer.unsupported]
    return answer.text + APPENDIX + ("Sources:\n" + "\n".join(lines) + "\n\n" if lines else "") + answer.disclaimer


def extras_of(answer: Answer) -> dict[str, Any]:
    """The top-level fields added to OpenAI's response: ``citations`` and ``slm``."""
    return {
        "citations": [{k: v for k, v in asdict(c).items() if k != "chunk_id"} for c in answer.citations],
        "slm": {
            "abstained": answer.abstained, "mode": answer.mode, "disclaimer": answer.disclaimer,
            "unsupported": list(answer.unsupported),
            "passages": [{"source": h.source, "page": h.page, "text": h.text, "similarity": h.similarity}
                         for h in answer.hits],
            "timings": asdict(answer.timings),
        },
    }


def _usage(answer: Answer) -> dict[str, int]:
    t = answer.timings
    return {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "total_tokens": t.prompt_tokens + t.completion_tokens}


class RagService:
    """Answers chat-completion requests from the served collections."""

    def __init__(self, collections: Mapping[str, Collection], *, max_pending: int = MAX_PENDING) -> None:
        self.collections = dict(collections)
        self._slots = threading.BoundedSemaphore(max_pending)

    def admit(self) -> None:
        """Take a request slot (``release`` gives it back); 429 when all are taken."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(429, "the assistant is busy answering other questions; retry in a few seconds",
                           "rate_limit_exceeded", "rate_limit_error")

    def release(self) -> None:
        self._slots.release()

    def model(self, name: str) -> dict[str, Any]:
        if name not in self.collections:
            served = ", ".join(sorted(self.collections))
            raise ApiError(404, f"model {name!r} is not served here; use one of: {served}", "model_not_found")
        c = self.collections[name]
        return {"id": name, "object": "model", "created": 0, "owned_by": "slm-assistant",
                "domain": c.assistant.domain.name, "documents": len(c.assistant.store.documents())}

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.model(name) for name in self.collections]}

    def check(self, req: ChatRequest) -> Checked:
        """The collection, question and history of a request (ApiError if it cannot be answered)."""
        if req.model not in self.collections:
            self.model(req.model)  # raises model_not_found
        question, history = conversation(req.messages)
        try:
            question = check_question(question)
        except InvalidQuestion as exc:
            raise ApiError(400, f"the question (the last user message): {exc}", "invalid_question") from None
        return self.collections[req.model], question, history

    def answer(self, req: ChatRequest, checked: Checked) -> Answer:
        collection, question, history = checked
        try:
            return collection.assistant.ask(
                question, history=history, temperature=req.temperature,
                max_tokens=req.max_completion_tokens or req.max_tokens)
        except ContextOverflow as exc:
            raise ApiError(400, str(exc), "context_length_exceeded") from exc
        except Exception as exc:  # the model, the index or the audit log failed: not the client's to fix
            raise internal_error(exc) from exc

    def completion(self, req: ChatRequest, checked: Checked) -> dict[str, Any]:
        answer = self.answer(req, checked)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": req.model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content_of(answer, req.citations_in_content)}}],
            "usage": _usage(answer), **extras_of(answer),
        }

    def chunks(self, req: ChatRequest, checked: Checked) -> Iterator[str]:
        """Server-sent events of a streamed completion, ending with ``data: [DONE]``."""
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": req.model}

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        try:
            answer = self.answer(req, checked)
        except ApiError as exc:  # the stream has started: report in-band, as OpenAI does
            yield f"data: {json.dumps(exc.body())}\n\n"
            yield "data: [DONE]\n\n"
            return
        content = content_of(answer, req.citations_in_content)
        for piece in _pieces(content):
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}], **extras_of(answer))
        if (req.stream_options or {}).get("include_usage"):
            yield event([], usage=_usage(answer))
        yield "data: [DONE]\n\n"


def _pieces(text: str, size: int = 24) -> Iterator[str]:
    """The content in word-aligned pieces of about ``size`` characters."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        while end < len(text) and not text[end].isspace():
            end += 1
        yield text[start:end]
        start = end


def create_app(collections: Mapping[str, Collection], *, api_key: str | None = None,
               max_pending: int = MAX_PENDING) -> FastAPI:
    """The ASGI app serving ``collections`` (require ``Authorization: Bearer api_key`` if given)."""
    if api_key is not None and not api_key.strip():
        raise ConfigError("the API key is empty; give a real key or leave the option out")
    service = RagService(collections, max_pending=max_pending)
    app = FastAPI(title="slm-assistant RAG", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path != "/health":
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                return ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                "invalid_api_key").response()
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return ApiError(400, f"invalid request: {where}: {first.get('msg', 'malformed body')}", "invalid_request").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), None).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return internal_error(exc).response()

    @app.get("/health")
    async def health() -> dict[str, str]:  # async: answered even when every worker thread is busy
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return service.models()

    @app.get("/v1/models/{name}")
    def model(name: str) -> dict[str, Any]:
        return service.model(name)

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> Any:  # sync: FastAPI runs it in a worker thread
        checked = service.check(req)  # a wrong model or a bad question is an HTTP error, never an event
        service.admit()
        if not req.stream:
            try:
                return service.completion(req, checked)
            finally:
                service.release()

        def events() -> Iterator[str]:
            try:
                yield from service.chunks(req, checked)
            finally:
                service.release()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app

def open_collections(settings: Settings, specs: list[str], *, domain: str | None = None) -> dict[str, Collection]:
    """Open ``NAME=DIR`` (or ``DIR``, named after its folder) indexes as collections.

    Each index is answered in the domain it was ingested with, unless ``domain`` is
    given. The embedder and the model are loaded once and shared by all of them.
    """
    collections: dict[str, Collection] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name, folder = (name.strip(), folder) if sep else (Path(spec).resolve().name, spec)
        if not name or name in collections:
            raise ConfigError(f"--index {spec!r}: give each index a distinct name, as NAME=DIR")
        asst = Assistant.open(settings=with_overrides(settings, index={"dir": folder}), domain=domain)
        collections[name] = Collection(name, asst)
    return collections


def run_rag_server(collections: Mapping[str, Collection], *, host: str, port: int, api_key: str | None) -> None:
    """Serve until interrupted (uvicorn; its access log has paths and status codes, never questions)."""
    import uvicorn

    first = next(iter(collections.values()))
    first.assistant.llm.count_tokens("warm up")  # load the model now: errors at start, not at the first question
    names = ", ".join(f"{n} ({c.assistant.domain.name})" for n, c in collections.items())
    print(f"serving {names} on http://{host}:{port}/v1 (Ctrl-C stops)", file=sys.stderr, flush=True)
    uvicorn.run(create_app(collections, api_key=api_key), host=host, port=port, log_level="warning",
                server_header=False)
