"""The HTTP API while the model is still loading (no model): 503 with Retry-After, metrics still served."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from edge.config.llm import LlmSettings
from edge.llm.core import LlmCore
from edge.llm.http_api import LlmHttpServer


def test_http_answers_503_while_the_model_loads() -> None:
    core = LlmCore(LlmSettings(model="/nonexistent.gguf"))  # never loaded: the state before load() returns
    server = LlmHttpServer(core, "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"{base}/health", timeout=5)
        assert health.value.code == 503 and json.loads(health.value.read())["status"] == "loading"
        request = urllib.request.Request(f"{base}/v1/chat/completions", data=json.dumps({"prompt": "hi"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as chat:
            urllib.request.urlopen(request, timeout=5)
        assert chat.value.code == 503 and chat.value.headers["Retry-After"]
        assert "still loading" in json.loads(chat.value.read())["error"]["message"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert 'edgeteach_llm_model_loaded{model="nonexistent"} 0' in response.read().decode()
    finally:
        server.stop()
