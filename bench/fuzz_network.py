"""Network fuzz run (issue 12, "Done when"): random and malformed MQTT payloads and HTTP requests against a
running `edge run` daemon and `edge llm serve`, then checks that both are still alive and answering, that
their memory did not grow, and that neither logged a traceback.

Everything is real: a Mosquitto on a free loopback port, the daemon with two camera pipelines (a tiny
ONNX bundle on a looping video file) and its health server, the LLM server with the test GGUF
(SmolLM2-135M, `scripts/fetch-test-models.sh`), an API key and 8-token answers. Both log to files in the
work folder, next to `cases.jsonl` (every case sent, in order, for reproducing a finding).

MQTT (one paho MQTT 5 client, deterministic seed): payloads on every command topic (`<prefix>/cmd/<name>`
for the seven commands and unknown names), on `<prefix>/llm/request`, and on `<prefix>/<pipeline>/state`
(the states the LLM's sensor context reads, for configured and unknown pipelines): random bytes, invalid
UTF-8, oversized and deeply nested JSON, wrong types, NaN/Infinity, negative/huge numbers, long strings,
retained flags, MQTT 5 properties (response topics with wildcards or outside the reply prefix,
correlation data, user properties), QoS 0/1/2. Every 100 messages (`FuzzOptions.sync_every`) a ping to the daemon and a
(refused) LLM request with a reply topic must come back: the back-pressure that keeps the run honest
(the broker never drops what the devices were too slow to take) and a liveness check on the way. Costly
valid requests (LLM generations, reloads of the real bundle) are rare; pause/resume end with a resume.

HTTP (raw sockets, so requests can be malformed, `--http-workers` at a time): bad request lines, huge or
odd headers, negative/non-digit Content-Length, Transfer-Encoding, truncated bodies, invalid and deep
JSON, wrong Content-Type, bad Host, bad/missing Authorization, random paths and methods, and a few valid
requests, against the LLM server's port and the daemon's health port. The MQTT and HTTP runs go at the
same time.

Every run starts with a corpus of the inputs that found bugs in earlier runs (`corpus_mqtt_cases`,
`corpus_http_cases`, counted in the totals), so the short run in the tests checks them too.

RSS is read with psutil after a warm-up (a short fuzz of the same mix, an LLM generation, a snapshot, a
reload), then again after the run and a short settle; the check is |end - start| <= 10 % of start.

    .venv/bin/python bench/fuzz_network.py [--mqtt 10000] [--http 10000] [--seed 1] [--label quiet]

Writes bench/results/fuzz-network_<mqtt>x<http>_<label>.json (never over an earlier run; --out, --force).
tests/e2e/test_fuzz_network.py runs a shorter version through `run_fuzz`. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from tests.support.broker import Broker, free_port, mosquitto_available  # noqa: E402
from tests.support.daemon import DaemonProcess, camera_pipeline, write_color_video, write_config  # noqa: E402
from tests.support.gguf_models import SMOLLM2, missing_reason, model_path  # noqa: E402
from tests.support.llm_server import LlmServerProcess  # noqa: E402
from tests.support.onnx_models import make_color_bundle  # noqa: E402

DEVICE_ID = "fuzzdev"
PREFIX = f"edgeteach/{DEVICE_ID}"
PIPELINES = ("cam", "desk")
COMMANDS = ("ping", "status", "pause", "resume", "set", "reload", "snapshot")
API_KEY = "fuzz-" + "k" * 27  # a fixed key: the run is reproducible, and it is never a real secret
RSS_TOLERANCE = 0.10  # the bound: RSS within 10 % of the start
SYNC_TIMEOUT_S = 60.0  # a marker not back by then: the device is stuck (recorded, the run goes on)
HTTP_TIMEOUT_S = 2.0  # a raw request with no answer by then counts as "timeout" (the servers may wait longer)
MAX_RESPONSE_BYTES = 1 << 20  # what a raw HTTP read keeps; the rest is not needed to read the status

# Values that break a field's type or range: dropped into otherwise well-formed requests.
WEIRD: tuple[Any, ...] = (
    None, True, False, 0, -1, -(2**63), 2**64, 10**30, 1e308, -1e308, 1e-320, 0.5, -0.0,
    float("nan"), float("inf"), float("-inf"), "", " ", "x" * 5000, "\n\r\t\x00\x1b[2J", "\u202egnp.exe", "\udcff",
    "NaN", "../../../../etc/passwd", "/", "#", "+", "cam\n", [], {}, [1, "a", None], {"a": {"b": {"c": [1]}}},
    ["cam"] * 50, {"$ref": "#"}, "🙂" * 100,
)


# ------------------------------------------------------------------------------------------------ cases


@dataclass
class MqttCase:
    kind: str
    target: str  # "cmd:<name>", "llm", "state:<pipeline>"
    topic: str
    payload: bytes
    qos: int
    retain: bool
    response_topic: str | None = None
    correlation: bytes | None = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)


def _weird(rng: random.Random) -> Any:
    return rng.choice(WEIRD)


def _random_text(rng: random.Random, n: int) -> str:
    """Printable text from three scripts. No C0/C1 control characters: in a topic or MQTT 5 property the
    broker itself disconnects the sender for them, so they would test Mosquitto, not the device (payloads
    get them through the other kinds)."""
    return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0xA0, 0x800), rng.randrange(0x4E00, 0x9FFF)))) for _ in range(n))


def _deep(depth: int, rng: random.Random) -> str:
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    return opener * depth + "1" + closer * depth


def _valid_body(rng: random.Random, target: str, bundle_dir: str) -> dict[str, Any]:
    """A well-formed request for the target, which the kinds below then break in one place."""
    pipeline = rng.choice(PIPELINES)
    if target == "llm":
        return {"prompt": rng.choice(("What does the camera see?", "hi", "Say one word.")), "max_tokens": rng.randint(1, 4),
                "id": f"fz-{rng.randrange(10**6)}", "temperature": 0, "sensor_context": rng.random() < 0.5,
                "reply_to": f"{PREFIX}/replies/fuzz"}
    if target.startswith("state:"):
        return {"pipeline": target.split(":", 1)[1], "label": rng.choice(("red", "green", "cat")), "confidence": rng.random(),
                "ts": time.time(), "kind": "camera"}
    name = target.split(":", 1)[1]
    body: dict[str, Any] = {"id": f"fz-{rng.randrange(10**6)}"}
    if name in ("pause", "resume", "snapshot", "set", "reload") and rng.random() < 0.8:
        body["pipeline"] = pipeline
    if name == "set":
        body.update(rng.choice(({"threshold": round(rng.random(), 2)}, {"min_hold_s": rng.randint(0, 3)},
                                {"smoothing": {"method": "n_of_m", "n": 2, "m": 3}}, {"smoothing": {"method": "none"}})))
    elif name == "reload":
        # The real bundle (a valid reload: loads an ONNX session) only now and then; mostly paths to refuse.
        body["bundle"] = bundle_dir if rng.random() < 0.1 else rng.choice(
            ("/etc", "/tmp", "../", "../../etc/passwd", "colors/../..", "/dev/zero", "nope", "colors/manifest.json", "x" * 4000))
    elif name == "snapshot" and rng.random() < 0.3:
        body["raw"] = rng.random() < 0.5
    return body


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _mqtt_payload(rng: random.Random, kind: str, target: str, bundle_dir: str) -> bytes:
    body = _valid_body(rng, target, bundle_dir)
    if kind == "valid":
        return _encode(body)
    if kind == "random_bytes":
        return rng.randbytes(rng.choice((1, 16, 256, 4096)))
    if kind == "invalid_utf8":
        return b'{"pipeline": "' + rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80")) + b'"}'
    if kind == "empty":
        return rng.choice((b"", b" ", b"\n", b"{}", b"null", b"[]", b"0"))
    if kind == "huge_json":
        # Just over the default max_payload_bytes (64 KiB) mostly; now and then 1 MiB, which the broker must
        # not deliver to a client that announced a smaller Maximum Packet Size.
        size = 1 << 20 if rng.random() < 0.05 else rng.choice((60_000, 70_000, 200_000))
        body["pad"] = "A" * size
        return _encode(body)
    if kind == "deep_json":
        return _deep(rng.choice((100, 1000, 20_000)), rng).encode()
    if kind == "wrong_types":
        key = rng.choice(list(body) + ["pipeline", "id", "reply_to", "messages", "bundle", "threshold", "label", "ts"])
        body[key] = _weird(rng)
        return _encode(body)
    if kind == "nan_inf":
        key = rng.choice(("threshold", "min_hold_s", "confidence", "ts", "max_tokens", "temperature", "top_p", "id"))
        return _encode({**body, key: rng.choice((float("nan"), float("inf"), float("-inf")))})
    if kind == "numbers":
        key = rng.choice(("threshold", "min_hold_s", "confidence", "ts", "max_tokens", "temperature", "seed", "id"))
        raw = rng.choice(("-1", "-99999999999", "1e309", "-1e309", "1" * 5000, "123456789" * 40, "0.0000000001", "2e-400"))
        text = _encode({k: v for k, v in body.items() if k != key})
        return text[:-1] + (b", " if len(text) > 2 else b"") + f'"{key}": {raw}}}'.encode()
    if kind == "long_string":
        key = rng.choice(list(body) + ["pipeline", "label", "prompt", "id", "bundle"])
        body[key] = rng.choice(("x" * 70_000, _random_text(rng, 3000), "\n" * 2000, "a\u0000b" * 1000))
        return _encode(body)
    if kind == "extra_fields":
        body.update({_random_text(rng, rng.randint(1, 20)): _weird(rng) for _ in range(rng.randint(1, 30))})
        return _encode(body)
    if kind == "not_object":
        return _encode(rng.choice(([body], "ping", 42, True, None, [[]], list(range(1000)))))
    raise ValueError(kind)


MQTT_KINDS = ("valid", "random_bytes", "invalid_utf8", "empty", "huge_json", "deep_json", "wrong_types", "nan_inf", "numbers",
              "long_string", "extra_fields", "not_object")
# Rarer where a case is costly for the run (a 200 KB-1 MB publish) rather than for the device.
MQTT_WEIGHTS = (6, 8, 6, 5, 2, 6, 14, 8, 8, 6, 8, 5)


def _huge_int_field(body: dict[str, Any], key: str, digits: int) -> bytes:
    """`body` as JSON with `key` set to an integer of `digits` nines (json.dumps cannot write one so long)."""
    text = json.dumps(body)
    return (text[:-1] + (", " if body else "") + f'"{key}": {"9" * digits}}}').encode()


def corpus_mqtt_cases() -> list[MqttCase]:
    """Payloads that found bugs in earlier runs, sent first in every run (a fuzzer's seed corpus), so even the
    short run in the tests checks them; each with the bug it found and the commit that fixed it."""
    ping, reload, llm = f"{PREFIX}/cmd/ping", f"{PREFIX}/cmd/reload", f"{PREFIX}/llm/request"

    def case(topic: str, payload: bytes) -> MqttCase:
        return MqttCase("corpus", "llm" if topic == llm else f"cmd:{topic.rsplit('/', 1)[1]}" if "/cmd/" in topic
                        else f"state:{topic.split('/')[-2]}", topic, payload, qos=1, retain=False)

    return [
        case(ping, _huge_int_field({}, "id", 5000)),  # json.loads' ValueError for > 4300 digits was not caught (211cb1f)
        case(reload, json.dumps({"pipeline": PIPELINES[0], "bundle": "x" * 300}).encode()),  # OSError: File name too long (5d0e211)
        case(ping, b'{"id": "\\udcff"}'),  # a lone surrogate in the id: no reply could be encoded (5d0e211)
        case(ping, b'{"reply_to": "\\udcff"}'),  # ... in a command's reply_to: the topic check failed (5d0e211)
        case(llm, json.dumps({"prompt": "hi", "reply_to": "\udcff"}).encode()),  # ... in an LLM request's reply_to (5d0e211)
        # an integer beyond the float range as a state's confidence or ts: OverflowError in the sensor context (5d0e211)
        case(f"{PREFIX}/{PIPELINES[0]}/state", _huge_int_field({"label": "red", "ts": time.time()}, "confidence", 400)),
        case(f"{PREFIX}/{PIPELINES[0]}/state", _huge_int_field({"label": "red", "confidence": 0.5}, "ts", 400)),
    ]


def mqtt_cases(rng: random.Random, count: int, bundle_dir: str) -> Iterator[MqttCase]:
    unknown = ("reboot", "shutdown", "PING", "ping2", "../ping", "a" * 200, "snapshot ", "ünïcode", "$SYS", "exec")
    for _ in range(count):
        roll = rng.random()
        if roll < 0.5:
            name = rng.choice(COMMANDS) if rng.random() < 0.85 else rng.choice(unknown)
            target, topic = f"cmd:{name}", f"{PREFIX}/cmd/{name}"
        elif roll < 0.75:
            target, topic = "llm", f"{PREFIX}/llm/request"
        else:
            pipeline = rng.choice(PIPELINES + ("evil", "x" * 70, "a.b-c_d", "ünï"))
            target, topic = f"state:{pipeline}", f"{PREFIX}/{pipeline}/state"
        kind = rng.choices(MQTT_KINDS, MQTT_WEIGHTS)[0]
        payload = _mqtt_payload(rng, kind, target, bundle_dir)
        case = MqttCase(kind, target, topic, payload, qos=rng.choice((0, 0, 1, 1, 1, 2)), retain=rng.random() < 0.1)
        if rng.random() < 0.35:  # MQTT 5 request/response properties, allowed and refused ones
            case.response_topic = rng.choice((f"{PREFIX}/replies/fuzz", f"{PREFIX}/replies/#", f"{PREFIX}/replies/+/x", "#", "+",
                                              "other/replies/x", f"{PREFIX}/cmd/ping", f"{PREFIX}/cam/state", f"{PREFIX}/replies",
                                              "homeassistant/x/config", f"{PREFIX}/replies/" + "r" * 3000))
            case.correlation = rng.randbytes(rng.choice((0, 1, 16, 1024)))
        if rng.random() < 0.1:
            case.user_properties = [(_random_text(rng, 8), _random_text(rng, rng.choice((1, 100, 2000)))) for _ in range(rng.randint(1, 5))]
        yield case


@dataclass
class HttpCase:
    kind: str
    target: str  # "llm" or "health"
    data: bytes
    half_close: bool  # the request is incomplete on purpose: shut our side so the server sees the end now


def _request(method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogateescape") + body


def corpus_http_cases(ports: dict[str, int]) -> list[HttpCase]:
    """Requests that found bugs in earlier runs, sent first in every run (see corpus_mqtt_cases)."""
    cases = []
    for target, port in sorted(ports.items()):
        # A chunked body with a bad chunk size: uvicorn answered 400 itself, then the app's own answer raised h11's
        # LocalProtocolError, logged as a traceback (87436cb).
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        cases.append(HttpCase("corpus", target, head.encode() + b"zz\r\nhello\r\n0\r\n\r\n", half_close=False))
    return cases


def http_cases(rng: random.Random, count: int, ports: dict[str, int]) -> Iterator[HttpCase]:
    kinds = ("request_line", "headers", "content_length", "transfer_encoding", "truncated", "invalid_json", "deep_json",
             "wrong_json", "content_type", "host", "authorization", "path_method", "valid")
    weights = (8, 8, 8, 7, 6, 8, 6, 8, 6, 7, 8, 10, 4)
    for _ in range(count):
        target = rng.choice(("llm", "llm", "health"))
        kind = rng.choices(kinds, weights)[0]
        yield _http_case(rng, kind, target, ports[target])


def _http_case(rng: random.Random, kind: str, target: str, port: int) -> HttpCase:
    host = ("Host", f"127.0.0.1:{port}")
    auth = ("Authorization", f"Bearer {API_KEY}")
    chat = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()

    def post(body: bytes, extra: list[tuple[str, str]] | None = None, length: str | None = None,
             path: str = "/v1/chat/completions") -> bytes:
        headers = [host, auth, ("Content-Type", "application/json"), ("Content-Length", length or str(len(body))), ("Connection", "close")]
        return _request("POST", path, headers + (extra or []), body)

    half = False
    if kind == "request_line":
        line = rng.choice((
            rng.randbytes(rng.choice((1, 10, 200))), b"GET", b"GET /", b"GET / HTTP/1.1 extra", b"GET / HTTP/9.9", b"GET / FOO/1.1",
            b"\x00\x01 / HTTP/1.1", b"GET /" + b"a" * 100_000 + b" HTTP/1.1", b"get / http/1.1", b"GET\t/\tHTTP/1.1",
            b"GET /%zz%00 HTTP/1.1", b"GET /\xff\xfe HTTP/1.1", b"", b" GET / HTTP/1.1", b"GET  /  HTTP/1.1", b"GET / HTTP/1.1\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello's first bytes
        ))
        data = line + rng.choice((b"\r\n\r\n", b"\r\n", b"", b"\n\n", b"\r\nHost: x\r\n\r\n"))
        half = not data.endswith(b"\n\n") and not data.endswith(b"\r\n\r\n")
    elif kind == "headers":
        variant = rng.randrange(9)
        extra: list[tuple[str, str]] = []
        raw = b""
        if variant == 0:
            extra = [(f"X-H{i}", "v") for i in range(rng.choice((100, 1000, 5000)))]
        elif variant == 1:
            extra = [("X-Big", "a" * rng.choice((8_000, 70_000, 300_000)))]
        elif variant == 2:
            raw = b"NoColonHere\r\n"
        elif variant == 3:
            raw = b"Bad Name: x\r\n"
        elif variant == 4:
            raw = b"X-Nul: a\x00b\r\n"
        elif variant == 5:
            raw = b"X-Fold: a\r\n  folded\r\n"
        elif variant == 6:
            raw = "X-Ünï: ∂\r\n".encode()
        elif variant == 7:
            raw = b":empty-name\r\n"
        else:
            raw = b"X-Lf: a\nX-Other: b\n"
        head = _request("GET", rng.choice(("/v1/models", "/health", "/healthz", "/metrics")), [host, auth] + extra)
        data = head[:-2] + raw + b"\r\n"
    elif kind == "content_length":
        value = rng.choice(("-1", "-100", "abc", "1e3", "+5", "0x10", " 5", "5 5", "99999999999999999999999", "18446744073709551616",
                            "", "5,5", "٣", "0", "4294967296"))
        data = post(chat, length=value)
        if rng.random() < 0.3:  # two different lengths
            data = data.replace(b"Connection: close\r\n", b"Content-Length: 3\r\nConnection: close\r\n")
        half = True
    elif kind == "transfer_encoding":
        te = rng.choice(("chunked", "gzip", "chunked, identity", " chunked", "Chunked", "identity", "chunked\x0b", "x" * 1000))
        body = rng.choice((b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n", b"ffffffffffffffff\r\nx\r\n",
                           b"-5\r\nhello\r\n0\r\n\r\n", hex(len(chat))[2:].encode() + b"\r\n" + chat + b"\r\n0\r\n\r\n"))
        headers = [host, auth, ("Content-Type", "application/json"), ("Transfer-Encoding", te), ("Connection", "close")]
        if rng.random() < 0.3:
            headers.append(("Content-Length", str(len(body))))
        data = _request("POST", "/v1/chat/completions", headers, body)
        half = True
    elif kind == "truncated":
        body = chat[: rng.randrange(0, len(chat))]
        data = post(body, length=str(len(chat) + rng.choice((1, 100, 10_000, 10_000_000))))
        if rng.random() < 0.3:  # headers cut off too
            data = data[: rng.randrange(1, len(data))]
        half = rng.random() < 0.9  # a few wait for the server's read timeout instead
    elif kind == "invalid_json":
        body = rng.choice((rng.randbytes(rng.choice((1, 50, 2000))), b"{", b'{"messages": [', b"{'a': 1}", b"\xff\xfe{}", b"nul",
                           b'{"messages": [{"role": "user", "content": "hi"}], }', b"[" * 10 + b"]" * 9, b'"\\ud800"'))
        data = post(body)
    elif kind == "deep_json":
        depth = rng.choice((500, 5_000, 50_000, 200_000))
        inner = _deep(depth, rng)
        body = (inner if rng.random() < 0.5 else '{"messages": ' + inner + ', "max_tokens": 1}').encode()
        data = post(body)
    elif kind == "wrong_json":
        base: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        key = rng.choice(("messages", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "sensor_context", "model", "n"))
        base[key] = _weird(rng)
        text = json.dumps(base, allow_nan=True)
        if rng.random() < 0.3:
            text = text[:-1] + ', "max_tokens": ' + rng.choice(("1" * 5000, "1e309", "-1e309", "NaN", "Infinity")) + "}"
        data = post(text.encode("utf-8", "surrogatepass"))
    elif kind == "content_type":
        ctype = rng.choice(("text/plain", "multipart/form-data; boundary=x", "application/json; charset=utf-16",
                            "application/x-www-form-urlencoded", "application/json\x00", "", "application/jsonx", "*/*"))
        data = _request("POST", "/v1/chat/completions", [host, auth, ("Content-Type", ctype), ("Content-Length", str(len(chat))),
                                                         ("Connection", "close")], chat)
        if rng.random() < 0.2:
            data = data.replace(f"Content-Type: {ctype}\r\n".encode("utf-8", "surrogateescape"), b"")
    elif kind == "host":
        variant = rng.choice(("missing", "", "evil.example", "127.0.0.1:1", "double", "h" * 5000, "[::1", "xn--80ak6aa92e.com",
                              "127.0.0.1:port"))
        headers = [auth, ("Connection", "close")]
        if variant == "double":
            headers += [host, ("Host", "evil.example")]
        elif variant != "missing":
            headers.append(("Host", variant))
        data = _request("GET", rng.choice(("/v1/models", "/health", "/healthz", "/edgeteach/sensors")), headers,
                        version=rng.choice(("HTTP/1.1", "HTTP/1.0")))
    elif kind == "authorization":
        value = rng.choice((None, "Bearer wrong", f"Bearer {API_KEY[:-1]}", "Basic dXNlcjpwYXNz", f"bearer {API_KEY}",
                            "Bearer " + "k" * 10_000, f"Bearer {API_KEY} extra", "Bearer ", "Bearer \u00e9\u00e9", f"Bearer  {API_KEY}",
                            API_KEY))
        headers = [host, ("Connection", "close")] + ([("Authorization", value)] if value is not None else [])
        if rng.random() < 0.5:
            data = _request("GET", rng.choice(("/v1/models", "/edgeteach/sensors", "/health", "/metrics")), headers)
        else:
            data = _request("POST", "/v1/chat/completions",
                            headers + [("Content-Type", "application/json"), ("Content-Length", str(len(chat)))], chat)
    elif kind == "path_method":
        method = rng.choice(("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "HEAD", "FOO", "G\x00T", "GET" * 100))
        path = rng.choice(("/", "/v1", "/v1/models/../../etc/passwd", "//v1//models", "/%2e%2e/%2e%2e/", "/v1/models?" + "a=1&" * 3000,
                           "*", "http://evil.example/v1/models", "/v1/chat/completions/", "/healthz/../metrics",
                           "/" + _random_text(rng, 30), "/edgeteach/sensors?pipeline=../../", "/metrics#frag", "/V1/MODELS"))
        body = rng.choice((b"", chat))
        headers = [host, auth, ("Connection", "close")] + ([("Content-Length", str(len(body)))] if body else [])
        data = _request(method, path, headers, body)
    else:  # valid, so the run also shows that real requests are answered the whole time
        if target == "llm" and rng.random() < 0.1:  # a real generation: rare (the LLM queue refuses the excess)
            data = post(chat)
        else:
            path = rng.choice(("/v1/models", "/health", "/metrics", "/edgeteach/sensors") if target == "llm" else ("/healthz", "/metrics"))
            data = _request("GET", path, [host, auth, ("Connection", "close")])
    return HttpCase(kind, target, data, half)


# --------------------------------------------------------------------------------------------- senders


def send_http(case: HttpCase, port: int, timeout: float = HTTP_TIMEOUT_S) -> tuple[str, float]:
    """One raw request on its own connection: (outcome, seconds). The outcome is the status code, or
    "closed" (the server closed without an answer), "reset", "timeout", "refused" (nothing listens)."""
    start = time.perf_counter()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused", time.perf_counter() - start
    except OSError:
        return "connect-error", time.perf_counter() - start
    with sock:
        try:
            sock.sendall(case.data)
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered early and closed (a huge header, say): its answer may still be there
        buf = b""
        outcome = ""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                outcome = "timeout"
                break
            except OSError:
                outcome = "reset"
                break
            if not chunk:
                outcome = "closed"
                break
            buf += chunk
            if _response_complete(buf) or len(buf) > MAX_RESPONSE_BYTES:
                break
    status = _status(buf)
    return (status or outcome), time.perf_counter() - start


def _status(buf: bytes) -> str | None:
    line = buf.split(b"\r\n", 1)[0].split(b" ")
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
        return line[1].decode()
    return None


def _response_complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip().lower()
    if b"content-length" in headers and headers[b"content-length"].isdigit():
        return len(body) >= int(headers[b"content-length"])
    if headers.get(b"transfer-encoding") == b"chunked":
        return body.endswith(b"0\r\n\r\n")
    return False  # read to the close


class MqttFuzzer:
    """One MQTT 5 client that publishes the cases, sends the sync markers and counts the replies."""

    def __init__(self, host: str, port: int) -> None:
        self.replies: Counter[str] = Counter()
        self.internal_errors: list[str] = []  # the first 20 replies saying "internal error" (a bug behind each)
        self.internal_error_count = 0
        self._markers: set[bytes] = set()
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fuzz-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.disconnects = 0  # the broker closed our connection (it refuses some packets outright); paho reconnects
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the fuzz client got no SUBACK")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._subscribed.clear()
        client.subscribe([(f"{PREFIX}/cmd/+/reply", 1), (f"{PREFIX}/replies/#", 1), (f"{PREFIX}/llm/response", 0)])

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc != 0:
            self.disconnects += 1

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Connected and subscribed again (after the broker dropped us)."""
        return self._subscribed.wait(timeout)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic = message.topic
        if topic.startswith(f"{PREFIX}/replies/sync-"):
            with self._cond:
                corr = getattr(message.properties, "CorrelationData", None)
                self._markers.add(bytes(corr) if corr else topic.encode())
                self._cond.notify_all()
            return
        kind = ("command reply (broadcast)" if topic.endswith("/reply") else
                "LLM response (default topic)" if topic.endswith("/llm/response") else "reply on a response topic")
        with self._cond:
            self.replies[kind] += 1
            if b"internal error" in message.payload:
                self.internal_error_count += 1
                if len(self.internal_errors) < 20:
                    self.internal_errors.append(f"{topic}: {message.payload[:500]!r}")

    def publish(self, case: MqttCase) -> bool:
        props = None
        if case.response_topic is not None or case.user_properties:
            props = Properties(PacketTypes.PUBLISH)
            if case.response_topic is not None:
                props.ResponseTopic = case.response_topic
                if case.correlation:
                    props.CorrelationData = case.correlation
            if case.user_properties:
                props.UserProperty = case.user_properties
        try:
            info = self.client.publish(case.topic, case.payload, qos=case.qos, retain=case.retain, properties=props)
        except (ValueError, TypeError):  # paho refused to build the packet (not sent)
            return False
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def sync(self, index: int, timeout: float = SYNC_TIMEOUT_S, give_up: threading.Event | None = None) -> dict[str, bool]:
        """A daemon ping and a (refused: no prompt) LLM request, sent after everything before them; True for
        each that came back in time. Both devices handle a topic's messages in order, so their replies mean
        the earlier cases on those topics were taken off the broker."""
        cmd_key, llm_key = f"cmd-{index}".encode(), f"{PREFIX}/replies/sync-llm-{index}".encode()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{PREFIX}/replies/sync-cmd"
        props.CorrelationData = cmd_key
        self.client.publish(f"{PREFIX}/cmd/ping", b'{"id": "sync"}', qos=1, properties=props)
        self.client.publish(f"{PREFIX}/llm/request", json.dumps({"id": f"sync-{index}", "reply_to": llm_key.decode()}).encode(), qos=1)
        deadline = time.monotonic() + timeout
        with self._cond:
            # in short waits, so that a device found dead (give_up) ends the wait at once
            while not {cmd_key, llm_key} <= self._markers and time.monotonic() < deadline and not (give_up and give_up.is_set()):
                self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            got = {"daemon": cmd_key in self._markers, "llm": llm_key in self._markers}
            self._markers -= {cmd_key, llm_key}
        return got

    def command(self, name: str, body: dict[str, Any], timeout: float = 30.0) -> Any:
        """A command whose reply we read (the end checks): the JSON reply, or None."""
        key = f"{name}-{uuid.uuid4().hex}".encode()
        replies: list[Any] = []
        topic = f"{PREFIX}/replies/sync-end-{uuid.uuid4().hex[:8]}"
        done = threading.Event()

        def on_reply(client: Any, userdata: Any, message: Any) -> None:
            replies.append(json.loads(message.payload))
            done.set()

        self.client.message_callback_add(topic, on_reply)
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = topic
            props.CorrelationData = key
            self.client.publish(f"{PREFIX}/cmd/{name}", json.dumps(body).encode(), qos=1, properties=props)
            done.wait(timeout)
        finally:
            self.client.message_callback_remove(topic)
        return replies[0] if replies else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -------------------------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """The two processes under test and what they need."""

    workdir: Path
    daemon: DaemonProcess
    llm: LlmServerProcess
    health_port: int
    bundle_dir: str

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        self.daemon.stop()
        codes["daemon"] = self.daemon.process.returncode
        codes["llm"] = self.llm.stop()
        return codes


def start_rig(workdir: Path, broker_host: str, broker_port: int, model: Path) -> Rig:
    """The daemon and the LLM server from one config file, as on a device (the LLM server is started on its
    own, like edgeteach-llm.service, so each has its own log and RSS)."""
    bundle = make_color_bundle(workdir / "colors")
    video = write_color_video(workdir / "colors.avi", ["red", "green"], seconds_each=1.0, fps=10)
    health_port, llm_port = free_port(), free_port()
    pipelines = [camera_pipeline(name, bundle, str(video), source={"uri": str(video), "loop": True}) for name in PIPELINES]
    # Every command allowed, reload and snapshot included (off by default on a broker without accounts, like
    # this one): the fuzz reaches all of the command code.
    config = write_config(workdir / "edge.yaml", broker_host, broker_port, pipelines, health_port=health_port, device_id=DEVICE_ID,
                          mqtt={"commands": {"allow": list(COMMANDS)}},
                          llm={"enabled": False, "model": str(model), "port": llm_port, "threads": 1, "context_size": 512,
                               "max_tokens": 8, "temperature": 0, "api_key": API_KEY, "queue_size": 2})
    daemon = DaemonProcess(config)
    log_path = workdir / "llm-serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "edge.cli", "llm", "serve", "-c", str(config)], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    llm = LlmServerProcess(process, llm_port, log_path, API_KEY)
    rig = Rig(workdir, daemon, llm, health_port, str(bundle))
    try:
        _wait(lambda: _get(f"http://127.0.0.1:{llm_port}/v1/models", API_KEY) == 200, 120, "the LLM server to answer /v1/models",
              lambda: process.poll() is None, log_path)
        _wait(lambda: _get(f"http://127.0.0.1:{health_port}/healthz") == 200, 90, "the daemon's /healthz to say healthy",
              daemon.alive, daemon.log_path)
    except BaseException:
        rig.stop()
        raise
    return rig


def _get(url: str, key: str | None = None, timeout: float = 5.0) -> int | None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _wait(predicate: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool], log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"process exited while waiting for {what}:\n{log_path.read_text(errors='replace')[-4000:]}")
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}:\n{log_path.read_text(errors='replace')[-4000:]}")


def _rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 1e6
    except psutil.Error:
        return None


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class FuzzOptions:
    mqtt_count: int = 10_000
    http_count: int = 10_000
    seed: int = 1
    warmup: int = 300  # MQTT cases and HTTP requests each, before RSS is first read
    sync_every: int = 100
    http_workers: int = 8
    settle_s: float = 3.0  # after the run, before RSS is read again (let queued work and GC finish)


@dataclass
class Tally:
    sent: int = 0
    per_kind: Counter[str] = field(default_factory=Counter)
    per_target: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)


def _run_mqtt(fuzzer: MqttFuzzer, cases: Iterator[MqttCase], opts: FuzzOptions, log: Any, tally: Tally, stop: threading.Event) -> None:
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        if stop.is_set():
            tally.outcomes["stopped early: a device process exited"] += 1
            break
        if not fuzzer.client.is_connected():
            fuzzer.wait_ready()
        ok = fuzzer.publish(case)
        tally.sent += 1
        tally.per_kind[case.kind] += 1
        tally.per_target[_target_group(case.target)] += 1
        tally.outcomes["published" if ok else "publish refused by paho"] += 1
        log.write(json.dumps({"i": i, "proto": "mqtt", "t": round(time.time(), 3), "kind": case.kind, "topic": case.topic[:200],
                              "qos": case.qos, "retain": case.retain, "response_topic": (case.response_topic or "")[:200] or None,
                              "bytes": len(case.payload), "payload": case.payload[:300].decode("latin-1")}) + "\n")
        if i % opts.sync_every == 0:
            got = fuzzer.sync(i, give_up=stop)
            for who, back in got.items():
                tally.outcomes[f"sync {who} {'answered' if back else 'TIMED OUT'}"] += 1
    tally.seconds = time.perf_counter() - start


def _run_http(cases: list[HttpCase], ports: dict[str, int], opts: FuzzOptions, log: Any, tally: Tally, stop: threading.Event) -> None:
    start = time.perf_counter()
    lock = threading.Lock()

    def one(item: tuple[int, HttpCase]) -> None:
        i, case = item
        if stop.is_set():  # a device died: the run is over, the rest is not sent
            return
        outcome, seconds = send_http(case, ports[case.target])
        with lock:
            tally.sent += 1
            tally.per_kind[case.kind] += 1
            tally.per_target[case.target] += 1
            tally.outcomes[f"{case.target} {outcome}"] += 1
            tally.latencies.append(seconds)
            log.write(json.dumps({"i": i, "proto": "http", "t": round(time.time(), 3), "kind": case.kind, "target": case.target,
                                  "outcome": outcome, "bytes": len(case.data), "request": case.data[:300].decode("latin-1")}) + "\n")

    with ThreadPoolExecutor(opts.http_workers) as pool:
        list(pool.map(one, enumerate(cases, 1)))
    tally.seconds = time.perf_counter() - start


def _target_group(target: str) -> str:
    """cmd:<known command>, cmd:unknown, llm, state:configured or state:other (the table's rows)."""
    kind, _, name = target.partition(":")
    if kind == "cmd":
        return target if name in COMMANDS else "cmd:unknown"
    if kind == "state":
        return "state:configured" if name in PIPELINES else "state:other"
    return kind


def _warm_up(rig: Rig, fuzzer: MqttFuzzer, opts: FuzzOptions, ports: dict[str, int], stop: threading.Event) -> None:
    """The same mix on a different seed, plus one of each costly valid request, so the first reading of RSS
    already includes what the first requests load (model pages, the JPEG encoder, a second ONNX session).
    A device that dies here is left to the end checks (`stop` is set)."""
    rng = random.Random(opts.seed + 10_000)
    with open(os.devnull, "w") as sink:
        _run_mqtt(fuzzer, mqtt_cases(rng, opts.warmup, rig.bundle_dir), opts, sink, Tally(), stop)
        _run_http(list(http_cases(rng, opts.warmup, ports)), ports, opts, sink, Tally(), stop)
    if stop.is_set():
        return
    fuzzer.command("snapshot", {"pipeline": PIPELINES[0]})
    fuzzer.command("reload", {"pipeline": PIPELINES[1], "bundle": rig.bundle_dir})
    chat = json.dumps({"messages": [{"role": "user", "content": "What does the camera see?"}], "max_tokens": 8}).encode()
    request = urllib.request.Request(f"{rig.llm.base_url}/v1/chat/completions", data=chat,
                                     headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    for _ in range(3):  # the queue may still be full from the warm-up fuzz: try again
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                break
        except OSError:  # the queue may be full (429), or the server gone (the end checks say so)
            if stop.wait(2):
                return
    fuzzer.command("resume", {})


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")  # a new log record: the traceback above it has ended


def _watch(rig: Rig, died: threading.Event, done: threading.Event) -> None:
    while not done.wait(0.5):
        if not rig.daemon.alive() or rig.llm.process.poll() is not None:
            died.set()
            return


def _tracebacks(text: str) -> list[str]:
    """Each traceback in a log, from the two log lines before it to its exception line (the reproduction
    material of a finding), without the ^^^ marker lines."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = i + 1
            while end < len(lines) and end - i < 200 and not LOG_LINE.match(lines[end]):
                end += 1
            block = [x for x in lines[max(0, i - 2): end] if x.strip().strip("^~") != ""]
            found.append("\n".join(block)[-4000:])
    return found


def run_fuzz(workdir: Path, broker_host: str, broker_port: int, model: Path, opts: FuzzOptions) -> dict[str, Any]:
    """The whole run; returns the results (JSON-ready) with a "checks" section and "pass"."""
    load_start = load_average()
    rig = start_rig(workdir, broker_host, broker_port, model)
    fuzzer: MqttFuzzer | None = None
    result: dict[str, Any] = {}
    try:
        fuzzer = MqttFuzzer(broker_host, broker_port)
        ports = {"llm": rig.llm.port, "health": rig.health_port}
        stop = threading.Event()  # set when either device process has exited: the run ends there
        stop_sampling = threading.Event()
        watcher = threading.Thread(target=_watch, args=(rig, stop, stop_sampling), daemon=True)
        watcher.start()
        _warm_up(rig, fuzzer, opts, ports, stop)
        pids = {"daemon": rig.daemon.pid, "llm": rig.llm.process.pid}
        rss_start = {who: _rss_mb(pid) for who, pid in pids.items()}
        peak = dict(rss_start)

        def sample() -> None:  # the peak during the run, for the record (the check compares start and end)
            while not stop_sampling.wait(0.5):
                for who, pid in pids.items():
                    value = _rss_mb(pid)
                    if value is not None and (peak[who] is None or value > (peak[who] or 0)):
                        peak[who] = value

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        rng_mqtt, rng_http = random.Random(opts.seed), random.Random(opts.seed + 1)
        # The corpus first, counted in the totals: the run sends exactly mqtt_count and http_count cases.
        http_corpus, mqtt_corpus = corpus_http_cases(ports), corpus_mqtt_cases()
        http_list = http_corpus + list(http_cases(rng_http, max(0, opts.http_count - len(http_corpus)), ports))
        mqtt_list = itertools.chain(mqtt_corpus, mqtt_cases(rng_mqtt, max(0, opts.mqtt_count - len(mqtt_corpus)), rig.bundle_dir))
        mqtt_tally, http_tally = Tally(), Tally()
        started = time.perf_counter()
        with (workdir / "cases.jsonl").open("w") as log:
            http_thread = threading.Thread(target=_run_http, args=(http_list, ports, opts, log, http_tally, stop))
            http_thread.start()
            try:
                _run_mqtt(fuzzer, mqtt_list, opts, log, mqtt_tally, stop)
            finally:
                http_thread.join()
        final_sync = fuzzer.sync(-1, give_up=stop)  # everything sent has been taken by both devices
        wall = time.perf_counter() - started

        # The end state: resume whatever the fuzz paused, then ask both devices the ordinary questions.
        wait = 30.0 if rig.daemon.alive() else 0.0
        resume = fuzzer.command("resume", {}, wait)
        status = fuzzer.command("status", {}, wait)
        ping = fuzzer.command("ping", {"id": "end"}, wait)
        time.sleep(opts.settle_s)
        stop_sampling.set()
        sampler.join()
        rss_end = {who: _rss_mb(pid) for who, pid in pids.items()}
        models_status = _get(f"{rig.llm.base_url}/v1/models", API_KEY)
        healthz_status = _get(f"http://127.0.0.1:{rig.health_port}/healthz")
        paused = {name: (status or {}).get("pipelines", {}).get(name, {}).get("paused") for name in PIPELINES}
        alive = {"daemon": rig.daemon.alive(), "llm": rig.llm.process.poll() is None}
        growth = {who: (rss_end[who] - rss_start[who]) / rss_start[who] if rss_end[who] and rss_start[who] else None for who in pids}
        logs = {"daemon": rig.daemon.log(), "llm": rig.llm.log_text()}
        tracebacks = {who: _tracebacks(text) for who, text in logs.items()}
        checks = {
            "daemon_alive": alive["daemon"],
            "llm_alive": alive["llm"],
            "ping_answers": bool(ping and ping.get("ok") and ping.get("pong")),
            "v1_models_answers": models_status == 200,
            "pipelines_resumed": bool(resume and resume.get("ok")) and all(p is False for p in paused.values()),
            "rss_within_10_percent": all(g is not None and abs(g) <= RSS_TOLERANCE for g in growth.values()),
            "no_traceback_in_logs": not any(tracebacks.values()),
        }
        latencies_ms = sorted(1000 * s for s in http_tally.latencies)
        result = {
            "bench": "fuzz_network",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": opts.seed,
            "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "load_avg_at_start": load_start, "load_avg_at_end": load_average()},
            "options": {"mqtt_count": opts.mqtt_count, "http_count": opts.http_count, "warmup_each": opts.warmup,
                        "sync_every": opts.sync_every, "http_workers": opts.http_workers, "settle_s": opts.settle_s,
                        "http_client_timeout_s": HTTP_TIMEOUT_S},
            "mqtt": {
                "sent": mqtt_tally.sent, "per_kind": dict(sorted(mqtt_tally.per_kind.items())),
                "per_target": dict(sorted(mqtt_tally.per_target.items())), "outcomes": dict(sorted(mqtt_tally.outcomes.items())),
                "replies": dict(sorted(fuzzer.replies.items())), "internal_error_reply_count": fuzzer.internal_error_count,
                "internal_error_replies": fuzzer.internal_errors,
                "fuzz_client_disconnected_by_broker": fuzzer.disconnects, "final_sync": final_sync, "seconds": round(mqtt_tally.seconds, 1),
                "messages_per_s": round(mqtt_tally.sent / mqtt_tally.seconds, 1) if mqtt_tally.seconds else None,
            },
            "http": {
                "sent": http_tally.sent, "per_kind": dict(sorted(http_tally.per_kind.items())),
                "per_target": dict(sorted(http_tally.per_target.items())), "outcomes": dict(sorted(http_tally.outcomes.items())),
                "server_errors_5xx": sum(n for k, n in http_tally.outcomes.items() if k.split(" ")[1].startswith("5")),
                "refused": sum(n for k, n in http_tally.outcomes.items() if k.endswith(" refused")),
                "seconds": round(http_tally.seconds, 1),
                "requests_per_s": round(http_tally.sent / http_tally.seconds, 1) if http_tally.seconds else None,
                "latency_ms_p50": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
                "latency_ms_p99": round(latencies_ms[int(0.99 * (len(latencies_ms) - 1))], 1) if latencies_ms else None,
            },
            "wall_seconds": round(wall, 1),
            "rss_mb": {who: {"start_after_warmup": _round(rss_start[who]), "end": _round(rss_end[who]), "peak": _round(peak[who]),
                             "growth": round(growth[who], 4) if growth[who] is not None else None} for who in pids},
            "end": {"ping": ping, "v1_models_status": models_status, "healthz_status": healthz_status, "paused": paused, "alive": alive},
            "tracebacks": tracebacks,
            "checks": checks,
            "pass": all(checks.values()),
            "workdir": str(workdir),
        }
    finally:
        if fuzzer is not None:
            fuzzer.close()
        result["exit_codes"] = rig.stop()
    return result


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


# --------------------------------------------------------------------------------------------- report


def format_report(result: dict[str, Any]) -> str:
    m, h = result["mqtt"], result["http"]
    rows: list[tuple[str, str]] = [
        ("MQTT payloads sent", f"{m['sent']:,} in {m['seconds']:g} s ({m['messages_per_s']} /s)"),
        *[(f"  kind {k}", f"{v:,}") for k, v in m["per_kind"].items()],
        *[(f"  target {k}", f"{v:,}") for k, v in m["per_target"].items()],
        *[(f"  {k}", f"{v:,}") for k, v in m["outcomes"].items()],
        *[(f"  replies: {k}", f"{v:,}") for k, v in m["replies"].items()],
        ("  'internal error' replies", str(m.get("internal_error_reply_count", len(m["internal_error_replies"])))),
        ("HTTP requests sent", f"{h['sent']:,} in {h['seconds']:g} s ({h['requests_per_s']} /s), "
                               f"p50 {h['latency_ms_p50']} ms, p99 {h['latency_ms_p99']} ms"),
        *[(f"  kind {k}", f"{v:,}") for k, v in h["per_kind"].items()],
        *[(f"  {k}", f"{v:,}") for k, v in h["outcomes"].items()],
        ("  5xx answers / refused connections", f"{h['server_errors_5xx']} / {h['refused']}"),
        *[(f"RSS {who} (MB)", f"{r['start_after_warmup']} after warm-up -> {r['end']} at the end (peak {r['peak']}), "
                              f"{100 * r['growth']:+.1f} %" if r["growth"] is not None else "not measured")
          for who, r in result["rss_mb"].items()],
        ("wall time (both fuzzers)", f"{result['wall_seconds']:g} s"),
        ("load average start / end", f"{result['machine']['load_avg_at_start']} / {result['machine']['load_avg_at_end']}"),
        *[(f"check {k}", "ok" if v else "FAILED") for k, v in result["checks"].items()],
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mqtt", type=int, default=FuzzOptions.mqtt_count, help="random MQTT payloads to send")
    parser.add_argument("--http", type=int, default=FuzzOptions.http_count, help="malformed HTTP requests to send")
    parser.add_argument("--seed", type=int, default=FuzzOptions.seed, help="the run's random seed (same seed, same cases)")
    parser.add_argument("--warmup", type=int, default=FuzzOptions.warmup, help="MQTT and HTTP cases each before RSS is first read")
    parser.add_argument("--http-workers", type=int, default=FuzzOptions.http_workers, help="HTTP connections at a time")
    parser.add_argument("--workdir", type=Path, help="keep the logs and cases.jsonl here (default: a new folder under /tmp)")
    add_output_args(parser)
    args = parser.parse_args(argv)
    out = results_path(args, "fuzz_network", f"{args.mqtt}x{args.http}")
    if not mosquitto_available():
        raise SystemExit("mosquitto is not installed: run scripts/setup.sh")
    model = model_path(SMOLLM2)
    if model is None:
        raise SystemExit(missing_reason(SMOLLM2))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgeteach-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(workdir=workdir, port=free_port()).start()
    try:
        opts = FuzzOptions(mqtt_count=args.mqtt, http_count=args.http, seed=args.seed, warmup=args.warmup, http_workers=args.http_workers)
        result = run_fuzz(workdir, broker.host, broker.port, model, opts)
    finally:
        broker.stop()
    print(format_report(result))
    for who, found in result["tracebacks"].items():
        for text in found[:3]:
            print(f"\n--- traceback in the {who} log ---\n{text}")
    written = write_results(out, result, args.force)
    print(f"\nwrote {written.relative_to(REPO) if written.is_relative_to(REPO) else written}; logs and cases.jsonl in {workdir}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
