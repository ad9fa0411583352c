"""An optional audit log: what was asked of which documents, when, for compliance reviews.

One JSON object per line, appended to ``audit.path`` (owner-only, 0600)::

    {"time": "2026-11-22T03:14:07.120Z", "user": "svc-slm", "index": "/srv/idx/legal",
     "domain": "legal", "question": "Is [EMAIL] a party?", "abstained": false,
     "mode": "generate", "cited": [{"source": "msa.pdf", "page": 12}],
     "passages": ["msa.pdf"], "total_ms": 2310}

``mode`` is "generate" or "extractive" for answers and "retrieve" for searches
(``slm retrieve``, the LangChain retriever). ``user`` is the operating-system
account running slm: for the UI or the RAG server that is the service's account,
not the person at the browser (those have no accounts of their own here).

The question passes through :func:`assistant.redaction.redact` (emails, phone
numbers, ids, MRNs, birth dates), or is left out (``audit.questions = "omit"``,
then only a SHA-256 of it is kept so repeated questions can still be matched).
Answer text and passages are never written: the log says which documents were
shown, not what they say.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from assistant.errors import ConfigError
from assistant.redaction import redact
from assistant.types import Answer, Hit


class AuditLog:
    """Appends one line per answered question; safe for threads and for several processes."""

    def __init__(self, path: str | Path, *, questions: Literal["redacted", "omit"] = "redacted") -> None:
        self.path = Path(path)
        self.questions = questions
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.check()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError(f"audit.path {self.path}: cannot write the audit log ({reason}); "
                              "choose a writable file or unset audit.path") from None
        try:
            self.user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (containers)
            self.user = str(os.getuid())

    def _open(self) -> int:
        """The log, opened for appending: never through a symlink, always owner-only."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a log created by hand (or an older version) may be readable by others
        except BaseException:
            os.close(fd)
            raise
        return fd

    def check(self) -> None:
        """Raise OSError unless the log can be appended to (called before an answer is streamed)."""
        os.close(self._open())

    def _question(self, question: str) -> dict[str, str]:
        if self.questions == "omit":
            return {"question_sha256": hashlib.sha256(question.encode()).hexdigest()}
        return {"question": redact(question)}

    def entry(self, answer: Answer, *, index: str, domain: str) -> dict[str, object]:
        """The log record of one answer (see the module docstring)."""
        cited = list(dict.fromkeys((c.source, c.page) for c in answer.citations))
        return {
            "time": _now(), "user": self.user, "index": index, "domain": domain, **self._question(answer.question),
            "abstained": answer.abstained, "mode": answer.mode,
            "cited": [{"source": s, "page": p} for s, p in cited],
            "passages": list(dict.fromkeys(h.source for h in answer.hits)),
            "total_ms": round(answer.timings.total_ms),
        }

    def record(self, answer: Answer, *, index: str, domain: str) -> None:
        """Log an answer."""
        self._append(self.entry(answer, index=index, domain=domain))

    def record_search(self, question: str, hits: Sequence[Hit], *, index: str, domain: str) -> None:
        """Log a search that returned passages without an answer."""
        self._append({"time": _now(), "user": self.user, "index": index, "domain": domain,
                      **self._question(question), "mode": "retrieve", "cited": [],
                      "passages": list(dict.fromkeys(h.source for h in hits))})

    def _append(self, record: dict[str, object]) -> None:
        """One ``write`` of a whole line on an O_APPEND file, so lines never interleave."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            try:
                fd = self._open()
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError(28, "short write: the disk is full")
                finally:
                    os.close(fd)
            except OSError as exc:  # fail closed: what cannot be logged is not given
                raise ConfigError(f"audit log {self.path} could not be written ({exc.strerror}); the answer was "
                                  "withheld: free the disk or fix the file's permissions") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
