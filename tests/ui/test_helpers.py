"""The UI's plain helpers: names, password hashes, quote location, page rendering, CLI, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant import Answer, SentenceSupport
from assistant.cli import main
from tests.conftest import CORPORA, needs_shared
from ui.auth import hash_password, is_valid_hash, verify_password
from ui.cli import app_path, streamlit_argv
from ui.pdfview import highlight_html, locate, render_page
from ui.render import answer_sentences, md_escape
from ui.uiconfig import load_ui_config
from ui.uploads import UnsafeName, check_suffix, resolve_source, sanitize_collection, sanitize_filename

NEON = CORPORA / "legal" / "cuad-dev" / "NEONSYSTEMSINC_03_01_1999-EX-10.5-DISTRIBUTOR AGREEMENT_New.pdf"
TEXAS = "THIS AGREEMENT SHALL BE GOVERNED BY AND CONSTRUED IN ACCORDANCE WITH THE LAWS OF THE SIATE OF TEXAS."


@pytest.mark.parametrize(("raw", "safe"), [
    ("contract.pdf", "contract.pdf"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("C:\\Users\\me\\Deal (final).docx", "Deal (final).docx"),
    ("a\x00b\nc.md", "abc.md"),
    ("rm -rf $HOME;.txt", "rm -rf _HOME_.txt"),
    ("x" * 300 + ".pdf", "x" * 176 + ".pdf"),
])
def test_sanitize_filename(raw: str, safe: str) -> None:
    assert sanitize_filename(raw) == safe


@pytest.mark.parametrize("raw", ["", "..", "../", ".env", "dir/.hidden.pdf", "\x01\x02"])
def test_sanitize_filename_refuses(raw: str) -> None:
    with pytest.raises(UnsafeName):
        sanitize_filename(raw)


def test_suffix_and_collection_names() -> None:
    check_suffix("a.PDF")
    with pytest.raises(UnsafeName):
        check_suffix("a.exe")
    assert sanitize_collection("legal-2024") == "legal-2024"
    for bad in ("../x", ".hidden", "a/b", "", "x" * 65):
        with pytest.raises(UnsafeName):
            sanitize_collection(bad)


def test_resolve_source_stays_inside_files(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.pdf").write_bytes(b"%PDF")
    (tmp_path / "secret.txt").write_text("no")
    assert resolve_source(tmp_path, "a.pdf") == (tmp_path / "files" / "a.pdf").resolve()
    assert resolve_source(tmp_path, "../secret.txt") is None
    assert resolve_source(tmp_path, "missing.pdf") is None


def test_password_hash_round_trip() -> None:
    stored = hash_password("s3cret pass")
    assert stored.startswith("scrypt:") and "s3cret" not in stored and is_valid_hash(stored)
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pasS", stored)
    assert hash_password("s3cret pass") != stored, "salted"
    for bad in ("", "plain", "scrypt:1:8:1:zz:zz", "scrypt:3:8:1:00:00", "pbkdf2:1:2:3:4:5"):
        assert not is_valid_hash(bad) and not verify_password("x", bad)


def test_locate_ignores_spacing_case_and_line_breaks() -> None:
    page = "Section 15.6 GOVERNING LAW. THIS AGREEMENT SHALL BE GOVERNED BY AND CONSTRUED\r\nIN ACCORDANCE WITH"
    start, end = locate(page, "this agreement shall be governed by and construed in accordance")
    assert page[start:end].startswith("THIS AGREEMENT") and page[start:end].endswith("ACCORDANCE")
    assert locate(page, "the laws of Delaware") is None


def test_highlight_html_escapes_and_marks() -> None:
    text = "Intro <script>x</script>. Governed by Texas law. End."
    out = highlight_html(text, text.index("Governed"), text.index(" End"), "Governed by Texas law.")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<mark" in out and "Governed by Texas law.</mark>" in out
    # stale offsets: the quote is searched for instead
    assert "Governed by Texas law.</mark>" in highlight_html(text, 0, 5, "Governed by Texas law.")


@needs_shared
def test_render_page_highlights_the_quote() -> None:
    img = render_page(NEON, 12, TEXAS)
    assert img.found and img.png.startswith(b"\x89PNG") and img.width > 500
    assert not render_page(NEON, 12, "words that are not on this page at all").found
    with pytest.raises(ValueError):
        render_page(NEON, 99)


def test_answer_sentences_renumber_and_merge_duplicates() -> None:
    sents = (SentenceSupport("Texas law governs [2].", (1,), True, 0.9),
             SentenceSupport("Texas law governs [2].", (2,), True, 0.9),
             SentenceSupport("Payment is due in 10 days.", (), False, 0.1))
    answer = Answer("q", "…", (), sents, False, ())
    assert answer_sentences(answer) == [("Texas law governs.", (1, 2), True), ("Payment is due in 10 days.", (), False)]


def test_md_escape_neutralises_markdown() -> None:
    assert md_escape("costs $5 and $6 *now* [x](http://e) :red[y]\n# h") == \
        "costs \\$5 and \\$6 \\*now\\* \\[x\\]\\(http\\://e\\) \\:red\\[y\\] \\# h"


def test_ui_config_from_args_and_env(tmp_path: Path) -> None:
    cfg = load_ui_config(["--index", str(tmp_path / "coll" / "legal"), "--domain", "legal"],
                         env={"SLM_UI_MAX_UPLOAD_MB": "5", "SLM_UI_PASSWORD_HASH": " h "})
    assert cfg.collections_root == tmp_path / "coll" and cfg.collection == "legal" and cfg.domain == "legal"
    assert cfg.max_upload_bytes == 5 * 2**20 and cfg.password_hash == "h" and not cfg.fake_models
    default = load_ui_config([], env={})
    assert default.collections_root == Path("var/index") and default.password_hash is None


def test_streamlit_command_is_safe_by_default() -> None:
    argv = streamlit_argv(8600, ["--index", "/x"])
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]) == app_path() and app_path().is_file()
    flags = dict(zip(argv[5:argv.index("--")][::2], argv[5:argv.index("--")][1::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8600"
    assert flags["--browser.gatherUsageStats"] == "false" and flags["--server.headless"] == "true"
    assert argv[argv.index("--") + 1:] == ["--index", "/x"]


def test_slm_ui_is_registered_and_sets_a_password() -> None:
    runner = CliRunner()
    assert "--set-password" in runner.invoke(main, ["ui", "--help"]).output
    result = runner.invoke(main, ["ui", "--set-password"], input="long enough pw\nlong enough pw\n")
    assert result.exit_code == 0, result.output
    stored = result.output.strip().splitlines()[-1].split("=", 1)[1].strip("'")
    assert verify_password("long enough pw", stored)
    short = runner.invoke(main, ["ui", "--set-password"], input="short\nshort\n")
    assert short.exit_code != 0


def test_repo_streamlit_config_is_safe() -> None:
    import tomllib

    cfg = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["address"] == "127.0.0.1" and cfg["server"]["headless"] is True
    assert cfg["server"]["maxUploadSize"] == 200
