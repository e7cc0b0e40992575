"""A small real-HTTP client for the Studio tests (http.client: the project has no requests/httpx)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, port: int, cookie: str | None = None, csrf: bool = True) -> None:
        self.port, self.cookie, self.csrf = port, cookie, csrf

    def request(self, method: str, path: str, body: bytes | None = None, json_body: object = None,
                headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers or {})
        if self.csrf:
            sent.setdefault("X-Studio", "1")
        if self.cookie:
            sent["Cookie"] = self.cookie
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, json_body: object = None, body: bytes | None = None) -> Reply:
        return self.request("POST", path, body=body, json_body=json_body)
