"""Adapters that let other frameworks use the assistant.

Each lives in its own module and imports its framework there, so ``import assistant``
never loads one: ``from assistant.integrations.langchain import SlmRetriever``.
"""
