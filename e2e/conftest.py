"""Fixtures of the e2e suite: one fresh, started simulator per test (stopped, with its thread joined, after).

``e2e/`` is put on ``sys.path`` by pytest (it has no ``__init__.py``), so tests ``import sims``.
"""

from __future__ import annotations

import pytest

from sims import AnthropicSim, AzureOpenAISim, BedrockSim, GoogleSim, OpenAISim


@pytest.fixture
def openai_sim():
    with OpenAISim() as sim:
        yield sim


@pytest.fixture
def azure_sim():
    with AzureOpenAISim(deployments={"chat-prod": "gpt-4o-2024-11-20", "embed": "text-embedding-3-small"}) as sim:
        yield sim


@pytest.fixture
def anthropic_sim():
    with AnthropicSim() as sim:
        yield sim


@pytest.fixture
def bedrock_sim():
    with BedrockSim(session_token="sim-session-token-0001") as sim:
        yield sim


@pytest.fixture
def google_sim():
    with GoogleSim() as sim:
        yield sim
