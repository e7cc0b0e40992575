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


def test_a_failed_load_shows_no_internals_and_health_without_the_key_says_only_the_status() -> None:
    core = LlmCore(LlmSettings(model="/srv/private/models/broken.gguf", api_key="k3y-for-tests"))
    core.load_error = "/srv/private/models/broken.gguf: not a GGUF file (bad magic)"
    server = LlmHttpServer(core, "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"{base}/health", timeout=5)
        assert anonymous.value.code == 503 and json.loads(anonymous.value.read()) == {"status": "error"}
        keyed = urllib.request.Request(f"{base}/health", headers={"Authorization": "Bearer k3y-for-tests"})
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(keyed, timeout=5)
        assert json.loads(health.value.read()) == {"status": "error", "model": "broken"}  # the cause is in the log only
        request = urllib.request.Request(f"{base}/v1/chat/completions", data=json.dumps({"prompt": "hi"}).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": "Bearer k3y-for-tests"})
        with pytest.raises(urllib.error.HTTPError) as chat:
            urllib.request.urlopen(request, timeout=5)
        text = chat.value.read().decode()
        assert chat.value.code == 503 and "/srv/private" not in text and "bad magic" not in text
        with pytest.raises(urllib.error.HTTPError) as models:
            urllib.request.urlopen(urllib.request.Request(f"{base}/v1/models", headers={"Authorization": "Bearer wrong"}), timeout=5)
        assert models.value.code == 401 and models.value.headers["WWW-Authenticate"] == "Bearer"
    finally:
        server.stop()
