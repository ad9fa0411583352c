"""langchain-tests' standard retriever suite, set up for SlmRetriever (used by unit and integration tests).

A subclass gets ``assistant`` set on the class by a class-scoped fixture and names a query.
"""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from assistant import Assistant
from assistant.integrations.langchain import SlmRetriever


@pytest.mark.asyncio  # for the suite's async test; its sync tests only warn, silenced here
@pytest.mark.filterwarnings("ignore:The test <Function test_(?!ainvoke).*asyncio:pytest.PytestWarning")
class SlmRetrieverSuite(RetrieversIntegrationTests):
    assistant: Assistant

    @property
    def retriever_constructor(self) -> type[SlmRetriever]:
        return SlmRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"assistant": self.assistant}
