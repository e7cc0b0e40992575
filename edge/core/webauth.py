"""A password for a web page on a shared network (the device's dashboard and the trainer's Studio). On 127.0.0.1
there may be none; elsewhere the page refuses to start without one. A browser that gives it gets a session
cookie (this server run's random token, HttpOnly, SameSite=Strict); a wrong password is answered after a delay,
to slow guessing down, and wrong guesses are limited per client address and in all (edge/core/guesses.py),
however many connections send them.

Every request that changes something must also carry a custom header (`csrf_header`): a page on another site
cannot add one without the browser first asking this server (CORS), which it never allows, so such a page cannot
make a visitor's browser change anything here (cross-site request forgery), even on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from edge.core.guesses import DEFAULT_PER_CLIENT, DEFAULT_TOTAL, Refusal, WrongGuesses

WRONG_PASSWORD_DELAY_S = 1.0
MAX_LOGIN_BYTES = 1024
SAFE_METHODS = ("GET", "HEAD")


class PasswordError(ValueError):
    """A password file that cannot be used; the message says which file and how to fix it."""


def read_password_file(path: str | Path, key: str) -> str:
    """The first line of the file, stripped; PasswordError (naming `key`) when missing, unreadable or empty."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PasswordError(f"{key}: cannot read {file} ({reason}); write the password on its first line, readable by this user") from None
    password = lines[0].strip() if lines else ""
    if not password:
        raise PasswordError(f"{key}: {file} is empty; write the password on its first line")
    return password


class PagePassword:
    """None = no password (loopback only). The cookie's value is a token made for this server run, so a restart
    signs everyone out and the password itself never travels again after the login."""

    def __init__(self, password: str | None, cookie: str, csrf_header: str, guesses: WrongGuesses | None = None) -> None:
        self.password = password
        self.cookie = cookie
        self.csrf_header = csrf_header
        self.token = secrets.token_urlsafe(32)
        self.guesses = guesses or WrongGuesses(DEFAULT_PER_CLIENT, DEFAULT_TOTAL)

    @property
    def required(self) -> bool:
        return self.password is not None

    def signed_in(self, request: Request) -> bool:
        return not self.required or hmac.compare_digest(request.cookies.get(self.cookie, ""), self.token)

    def matches(self, given: str) -> bool:
        return self.password is not None and hmac.compare_digest(given.encode(), self.password.encode())

    def csrf_ok(self, request: Request) -> bool:
        return request.method in SAFE_METHODS or request.headers.get(self.csrf_header) == "1"

    def sign_in(self, response: Response) -> Response:
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict")
        return response

    async def check_login(self, request: Request) -> bool | Refusal | None:
        """Reads the login form (bounded): True when the password matches; False after the delay when it does not;
        a Refusal (how long to wait) past the limit on wrong guesses; None when the body is too long to be a password."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BYTES:
                return None
        client = request.client.host if request.client else "unknown"
        refusal = self.guesses.refusal(client)
        if refusal:
            return refusal
        given = parse_qs(body.decode("utf-8", "replace")).get("password", [""])[0]
        if self.matches(given):
            return True
        # counted now, before the delay, so guesses sent in parallel meet the limit as they arrive
        refusal = self.guesses.count_wrong(client)
        await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
        return refusal or False
