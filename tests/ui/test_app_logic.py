"""The Streamlit app's logic under AppTest (no browser): uploads, chat, citations, errors, export, password.

The real embedder and LLM are swapped for assistant.testing's fakes through the
app's one test hook, ``SLM_UI_FAKE_MODELS=1`` (see ui/backend.py), so each test
takes about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from tests.conftest import CORPORA, needs_shared
from ui.auth import hash_password
from ui.export import to_json, to_markdown

APP = str(Path(ui.__file__).resolve().parent / "app.py")
LAW = (b"GOVERNING LAW\n\nThis Agreement shall be governed by the laws of the State of Texas. "
       b"Any dispute shall be resolved in the courts of Dallas County.\n\nTERMINATION\n\n"
       b"Either party may terminate this Agreement with ninety days written notice.\n")
VIRUS = (b"# Virology\n\nThe infectious bronchitis virus causes economic losses to the poultry industry. "
         b"The strain SAIBK was isolated in Sichuan province in 2005.\n")
NEON = CORPORA / "legal" / "cuad-dev" / "NEONSYSTEMSINC_03_01_1999-EX-10.5-DISTRIBUTOR AGREEMENT_New.pdf"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLM_UI_FAKE_MODELS", "1")
    monkeypatch.setenv("SLM_UI_COLLECTIONS", str(tmp_path / "collections"))
    monkeypatch.setenv("SLM_UI_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "collections"


@pytest.fixture
def at(root: Path) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


def _page(at: AppTest, name: str) -> None:
    at.get("button_group")[0].set_value(name).run()


def _upload(at: AppTest, *files: tuple[str, bytes, str]) -> None:
    _page(at, "Documents")
    at.file_uploader[0].set_value(list(files)).run()
    at.button(key="ingest").click().run()
    assert not at.exception, at.exception


def _ask(at: AppTest, question: str) -> object:
    _page(at, "Chat")
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at.chat_message[-1]


def _texts(block: object) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error"):
        parts += [str(e.value) for e in block.get(kind)]
    return "\n".join(parts)


def _metric(at: AppTest, label: str) -> str:
    return next(m.proto.body for m in at.get("metric") if m.label == label)


def test_empty_collection_points_to_documents(at: AppTest) -> None:
    assert "has no documents yet" in at.info[0].value
    assert at.chat_input[0].proto.disabled


def test_upload_ingests_keeps_files_and_rejects_unsafe_names(at: AppTest, root: Path) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"), ("../../virus.md", VIRUS, "text/markdown"),
            (".hidden.txt", b"secret", "text/plain"))
    report = _texts(at)
    assert "**law.txt** — added" in report and "**virus.md** — added" in report
    assert any(".hidden.txt" in e.value and "hidden file" in e.value for e in at.error)
    kept = root / "default" / "files"
    assert sorted(p.name for p in kept.iterdir() if p.is_file()) == ["law.txt", "virus.md"]
    assert not (root / "virus.md").exists() and not (root.parent / "virus.md").exists(), "no path traversal"
    assert _metric(at, "Documents") == "2"
    assert at.file_uploader[0].value == [], "a fresh uploader after ingesting"


def test_delete_removes_document_and_kept_file(at: AppTest, root: Path) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"), ("virus.md", VIRUS, "text/markdown"))
    at.selectbox(key="delete-target").set_value("law.txt").run()
    at.button(key="delete").click().run()
    assert "**law.txt** — deleted" in _texts(at)
    assert _metric(at, "Documents") == "1"
    assert not (root / "default" / "files" / "law.txt").exists()


def test_reindex_reports_unchanged_files(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"))
    at.button(key="reindex").click().run()
    assert "**law.txt** — unchanged" in _texts(at)


def test_answer_has_numbered_citation_quote_disclaimer_and_timings(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"), ("virus.md", VIRUS, "text/markdown"))
    msg = _ask(at, "Which state's law governs the agreement?")
    text = _texts(msg)
    assert "State of Texas" in text and "\\[1\\]" in text
    assert "**\\[1\\]** law.txt" in text
    assert "> “" in text, "the verbatim quote is shown"
    assert "verify against the cited sources" in text, "the domain disclaimer is shown"
    assert "retrieval" in text and "total" in text
    assert [e.label for e in msg.get("expander")] == ["Show law.txt"]
    # open the page viewer (a lazy expander): a text file shows its text, the quote marked
    key = next(k for k in at.session_state if str(k).startswith("page-"))
    at.session_state[key] = True
    at.run()
    html = at.chat_message[-1].get("html")[0].proto.body
    assert "<mark" in html and "State of Texas" in html


def test_history_is_kept_per_session(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"))
    _ask(at, "Which state's law governs the agreement?")
    _ask(at, "How much notice is needed to terminate?")
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    assert len(at.session_state["turns"]) == 2


def test_abstention_is_shown_with_closest_passages(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"))
    msg = _ask(at, "zebra xylophone quasar")
    assert "Not in your documents" in msg.get("info")[0].value
    assert "**Closest passages**" in _texts(msg)
    assert "verify against the cited sources" in _texts(msg), "the disclaimer comes with abstentions too"


def test_extractive_mode_answers_with_quotes_only(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"))
    at.toggle(key="extractive").set_value(True).run()
    msg = _ask(at, "Which state's law governs the agreement?")
    assert "quotes only" in _texts(msg)
    assert at.session_state["turns"][-1]["answer"].mode == "extractive"


def test_errors_are_shown_and_the_session_goes_on(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"))
    msg = _ask(at, "   ")
    assert "the question is empty" in msg.get("error")[0].value
    msg = _ask(at, "Which state's law governs the agreement?")
    assert "State of Texas" in _texts(msg)
    assert "the question is empty" in at.error[0].value, "the error stays in the history"


def test_export_markdown_and_json_carry_citations(at: AppTest) -> None:
    _upload(at, ("law.txt", LAW, "text/plain"))
    _ask(at, "Which state's law governs the agreement?")
    assert {b.label for b in at.sidebar.get("download_button")} == {"Markdown", "JSON"}
    turns = at.session_state["turns"]
    md = to_markdown(turns)
    assert "Which state's law governs the agreement?" in md and "1. law.txt" in md and "State of Texas" in md
    data = json.loads(to_json(turns))
    cite = data["turns"][0]["answer"]["citations"][0]
    assert cite["source"] == "law.txt" and "Texas" in cite["quote"]


def test_new_collection_is_created_and_selected(at: AppTest, root: Path) -> None:
    at.text_input(key="new-collection").set_value("contracts-2024").run()
    at.button(key="create-collection").click().run()
    assert at.selectbox(key="collection").value == "contracts-2024"
    assert (root / "contracts-2024").is_dir()
    at.text_input(key="new-collection").set_value("../escape").run()
    at.button(key="create-collection").click().run()
    assert "not a valid collection name" in at.error[0].value
    assert not (root.parent / "escape").exists()


def test_model_picker_lists_gguf_files(root: Path) -> None:
    models = root.parent / "models"
    (models / "qwen").mkdir(parents=True)
    (models / "qwen" / "Qwen2.5-3B-Instruct-Q4_K_M.gguf").write_bytes(b"GGUF")
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    options = app.selectbox(key="model").options
    assert options[0].startswith("Bundled") and "qwen/Qwen2.5-3B-Instruct-Q4_K_M.gguf" in options
    assert options[-1].startswith("Other")


def test_password_gate(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_UI_PASSWORD_HASH", hash_password("correct horse"))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.chat_input and not app.get("button_group"), "nothing behind the gate is drawn"
    app.text_input(key="password").set_value("wrong")  # a form: the value is sent with the submit
    app.button[0].click().run()
    assert app.error[0].value == "Wrong password."
    app.text_input(key="password").set_value("correct horse")
    app.button[0].click().run()
    assert app.chat_input, "signed in"


@needs_shared
def test_pdf_citation_shows_the_rendered_page(at: AppTest) -> None:
    _upload(at, (NEON.name, NEON.read_bytes(), "application/pdf"))
    msg = _ask(at, "This agreement shall be governed by the laws of which state?")
    assert "p. 12" in _texts(msg)
    for key in [k for k in at.session_state if str(k).startswith("page-")]:
        at.session_state[key] = True
    at.run()
    images = at.chat_message[-1].get("image")
    assert images, "the cited PDF page is rendered as an image"
