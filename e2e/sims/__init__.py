"""Loopback simulators of the upstream model providers Sluice talks to, for end-to-end tests.

Each simulator is an aiohttp application run in a background thread on 127.0.0.1 (port 0) and speaks one
provider's published wire format; see each module's docstring for the API it follows:

* :class:`OpenAISim` (:mod:`sims.openai_sim`) — OpenAI and OpenAI-compatible APIs;
* :class:`AzureOpenAISim` (:mod:`sims.azure_openai`) — Azure OpenAI;
* :class:`AnthropicSim` (:mod:`sims.anthropic_sim`) — Anthropic Messages;
* :class:`BedrockSim` (:mod:`sims.bedrock`) — Amazon Bedrock Runtime Converse, SigV4-verified;
* :class:`GoogleSim` (:mod:`sims.google`) — Vertex AI, the Gemini API and a Google OAuth2 token endpoint.

Usage::

    with OpenAISim() as sim:              # started: sim.port is bound, sim.base_url is ready
        sim.fail(429, retry_after=2)      # script faults for the next requests
        ...drive the gateway or an SDK at sim.base_url...
        sim.requests[-1].json             # inspect what was received

Shared machinery (server thread, request log, fault queue, deterministic answers) is in :mod:`sims.common`.
"""

from .anthropic_sim import AnthropicSim
from .azure_openai import AzureOpenAISim
from .bedrock import BedrockSim
from .common import Fault, RecordedRequest, ServerThread, Sim
from .google import GoogleSim, make_service_account, sign_assertion, write_service_account
from .openai_sim import OpenAISim

__all__ = [
    "AnthropicSim",
    "AzureOpenAISim",
    "BedrockSim",
    "Fault",
    "GoogleSim",
    "OpenAISim",
    "RecordedRequest",
    "ServerThread",
    "Sim",
    "make_service_account",
    "sign_assertion",
    "write_service_account",
]
