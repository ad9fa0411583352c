"""slm-assistant in the browser: chat with page-level citations, and document management.

Run it with ``slm ui`` (binds 127.0.0.1, usage stats off). Arguments after
``--`` and ``SLM_UI_*`` variables are read by :mod:`ui.uiconfig`.
"""

from __future__ import annotations

import os
import time

import streamlit as st

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_var, "1")  # before any Hugging Face import: nothing downloads

from assistant import AssistantError  # noqa: E402
from ui import backend  # noqa: E402
from ui.auth import is_valid_hash, verify_password  # noqa: E402
from ui.chat_page import render_chat, render_conversation_tools  # noqa: E402
from ui.docs_page import render_documents  # noqa: E402
from ui.options import CHAT  # noqa: E402
from ui.sidebar import render_sidebar  # noqa: E402
from ui.uiconfig import UIConfig, app_argv, load_ui_config  # noqa: E402

AUTHED = "authenticated"


def require_password(cfg: UIConfig) -> None:
    """Stop the page at a password form unless no password is set or this session signed in."""
    if not cfg.password_hash or st.session_state.get(AUTHED):
        return
    st.subheader("slm-assistant")
    if not is_valid_hash(cfg.password_hash):
        st.error("SLM_UI_PASSWORD_HASH is not a valid hash; create one with `slm ui --set-password`.")
        st.stop()
    with st.form("login"):
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if verify_password(password, cfg.password_hash):
            st.session_state[AUTHED] = True
            st.session_state.pop("password", None)
            st.rerun()
        time.sleep(1.0)  # slows down guessing
        st.error("Wrong password.")
    st.stop()


def main() -> None:
    st.set_page_config(page_title="slm-assistant", page_icon=":material/library_books:", layout="centered")
    cfg = load_ui_config(app_argv())
    require_password(cfg)
    try:
        base = backend.base_settings()
    except AssistantError as exc:
        st.error(f"Settings problem: {exc}")
        st.stop()
    options = render_sidebar(cfg, base)
    tools = st.sidebar.container()  # filled after the page, so an export includes this run's answer
    if options.page == CHAT:
        render_chat(options, base, cfg)
        with tools:
            render_conversation_tools()
    else:
        render_documents(options, base, cfg)


main()
