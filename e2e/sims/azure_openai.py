"""Azure OpenAI simulator.

Follows the Azure OpenAI data-plane REST reference (https://learn.microsoft.com/azure/ai-foundry/openai/reference):

* ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``,
  ``POST /openai/deployments/{deployment}/completions?api-version=...``,
  ``POST /openai/deployments/{deployment}/embeddings?api-version=...`` and
  ``POST /openai/responses?api-version=...``: the OpenAI wire format (same bodies, streams and usage as
  :mod:`sims.openai_sim`), where ``model`` is optional and the answer names the deployment's model. Chat answers
  carry Azure's ``prompt_filter_results`` and per-choice ``content_filter_results``; a stream starts with
  Azure's extra chunk that has empty ``choices``, ``model: ""`` and the prompt filter results.
* Authentication: the ``api-key: <key>`` header (or ``Authorization: Bearer <token>`` when the simulator is
  given an ``entra_token``); otherwise 401 ``{"error": {"code": "401", "message": "Access denied due to invalid
  subscription key or wrong API endpoint. ..."}}``.
* A missing ``api-version`` gets Azure's 404 ``{"error": {"code": "404", "message": "Resource not found"}}``;
  an unsupported one 400 ``{"error": {"code": "BadRequest", "message": "API version not supported"}}``; an
  unknown deployment 404 ``DeploymentNotFound``.
* Scripted errors use Azure's ``{"error": {"code": "<code>", "message": "..."}}`` shape (429 code ``"429"``).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .common import BODY
from .openai_sim import OpenAISim

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")

_FILTERS = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}

_CODES = {
    400: ("BadRequest", "Bad request."),
    401: (
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
    ),
    403: ("403", "Access denied."),
    404: ("404", "Resource not found"),
    408: ("Timeout", "The operation was timeout."),
    429: (
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry after 1 second. Please contact Azure support service if you would like to further increase the default rate limit.",
    ),
    500: ("InternalServerError", "The server had an error while processing your request. Sorry about that!"),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later."),
}


class AzureOpenAISim(OpenAISim):
    """Simulates an Azure OpenAI resource. ``deployments`` maps deployment name → model name (``None``: any
    deployment exists and its model is its own name). ``api_versions``: accepted versions (``None``: any
    well-formed ``YYYY-MM-DD[-preview]``). ``base_url`` (the origin) is ``AzureOpenAI(azure_endpoint=...)``."""

    provider = "azure"

    def __init__(
        self,
        api_key: str = "azure-sim-key-0123456789abcdef",
        deployments: dict[str, str] | None = None,
        api_versions: set[str] | None = None,
        entra_token: str | None = None,
        provider_name: str = "azure",
    ) -> None:
        super().__init__(
            api_key=api_key, prefix="", models=list((deployments or {}).values()), provider_name=provider_name
        )
        self.deployments = deployments
        self.api_versions = api_versions
        self.entra_token = entra_token

    @property
    def base_url(self) -> str:
        return self.origin

    def add_routes(self, app: web.Application) -> None:
        d = "/openai/deployments/{deployment}"
        app.router.add_post(f"{d}/chat/completions", self._azure(self.chat_completions))
        app.router.add_post(f"{d}/completions", self._azure(self.completions))
        app.router.add_post(f"{d}/embeddings", self._azure(self.embeddings))
        app.router.add_post("/openai/responses", self._azure(self.responses))

    def _azure(self, handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            version = request.query.get("api-version")
            if not version:
                return self.error(404, "Resource not found", code="404")
            if (self.api_versions is not None and version not in self.api_versions) or not _API_VERSION.match(version):
                return self.error(400, "API version not supported", code="BadRequest")
            denied = self.authorize(request)
            if denied is not None:
                return denied
            deployment = request.match_info.get("deployment")
            if deployment is not None and self.deployments is not None and deployment not in self.deployments:
                return self.error(
                    404,
                    "The API deployment for this resource does not exist. If you created the deployment within the "
                    "last 5 minutes, please wait a moment and try again.",
                    code="DeploymentNotFound",
                )
            if not isinstance(request[BODY], dict):
                return self.error(400, "Invalid JSON body.", code="BadRequest")
            return await handler(request)

        return wrapped

    def authorize(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("api-key")
        if key is not None and key == self.api_key:
            return None
        auth = request.headers.get("Authorization", "")
        if self.entra_token is not None and auth == f"Bearer {self.entra_token}":
            return None
        return self.error(401)

    def error(self, status, message=None, error_type=None, headers=None, *, code: Any = ..., param=None):
        default_code, default_message = _CODES.get(status, (str(status), "Error."))
        if code is ...:
            code = error_type or default_code
        body = {"error": {"code": code, "message": message or default_message}}
        return web.json_response(body, status=status, headers={**self.response_headers(), **(headers or {})})

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        headers["apim-request-id"] = headers["x-request-id"]
        headers["x-ms-region"] = "Sim Central"
        return headers

    def requires_model(self) -> bool:
        return False

    def response_model(self, request: web.Request, body: dict) -> str:
        deployment = request.match_info.get("deployment")
        if deployment is None:  # /openai/responses names the deployment in "model"
            deployment = body.get("model") or ""
        if self.deployments is None:
            return deployment
        return self.deployments.get(deployment, deployment)

    def decorate_choice(self, choice: dict) -> dict:
        return {**choice, "content_filter_results": dict(_FILTERS)}

    def decorate_completion(self, obj: dict) -> dict:
        if obj.get("object") in ("chat.completion", "text_completion"):
            obj["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": dict(_FILTERS)}]
        return obj

    def first_stream_chunks(self, request: web.Request) -> list[dict]:
        return [
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": dict(_FILTERS)}],
            }
        ]
