"""An optional audit log: who asked what of which documents, for compliance reviews.

One JSON object per line, appended to ``audit.path`` (owner-only, 0600)::

    {"time": "2026-11-22T03:14:07.120Z", "index": "/srv/idx/legal", "domain": "legal",
     "question": "Is [EMAIL] a party?", "abstained": false, "mode": "generate",
     "cited": [{"source": "msa.pdf", "page": 12}], "passages": ["msa.pdf"], "total_ms": 2310}

The question passes through :func:`assistant.redaction.redact` (emails, phone
numbers, ids, MRNs, birth dates), or is left out (``audit.questions = "omit"``,
then only a SHA-256 of it is kept so repeated questions can still be matched).
Answer text and passages are never written: the log says which documents were
shown, not what they say.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from assistant.errors import ConfigError
from assistant.redaction import redact
from assistant.types import Answer


class AuditLog:
    """Appends one line per answered question; safe for threads and for several processes."""

    def __init__(self, path: str | Path, *, questions: Literal["redacted", "omit"] = "redacted") -> None:
        self.path = Path(path)
        self.questions = questions
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError(f"audit.path {self.path}: cannot write the audit log ({reason}); "
                              "choose a writable file or unset audit.path") from None

    def entry(self, answer: Answer, *, index: str, domain: str) -> dict[str, object]:
        """The log record of one answer (see the module docstring)."""
        if self.questions == "omit":
            question: dict[str, str] = {"question_sha256": hashlib.sha256(answer.question.encode()).hexdigest()}
        else:
            question = {"question": redact(answer.question)}
        cited = list(dict.fromkeys((c.source, c.page) for c in answer.citations))
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "index": index, "domain": domain, **question,
            "abstained": answer.abstained, "mode": answer.mode,
            "cited": [{"source": s, "page": p} for s, p in cited],
            "passages": list(dict.fromkeys(h.source for h in answer.hits)),
            "total_ms": round(answer.timings.total_ms),
        }

    def record(self, answer: Answer, *, index: str, domain: str) -> None:
        """Append the record of ``answer``: one ``write`` on an O_APPEND file, so lines never interleave."""
        line = (json.dumps(self.entry(answer, index=index, domain=domain), ensure_ascii=False) + "\n").encode()
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            except OSError as exc:  # fail closed: an answer that cannot be logged is not given
                raise ConfigError(f"audit log {self.path} could not be written ({exc.strerror}); the answer was "
                                  "withheld: free the disk or fix the file's permissions") from None
