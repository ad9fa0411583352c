"""The Streamlit chat (``slm ui``). Calls only the public API of assistant and ingest."""
