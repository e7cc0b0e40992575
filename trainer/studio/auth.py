"""The class password, by the scheme every EdgeTeach page uses (edge/core/webauth.py). On 127.0.0.1 nobody else
can reach the page, so there is none; on a LAN address the Studio refuses to start without one. A browser that
gives it gets a session cookie (this server run's random token, HttpOnly, SameSite=Strict); every other request
is answered 401 (API) or sent to the login page.

Every request that changes something must also carry `X-Studio: 1`: a header a page on another site cannot
add without the browser first asking this server (CORS), which it never allows, so such a page cannot make a
visitor's browser create or delete anything here (cross-site request forgery), even on 127.0.0.1.

Wrong passwords are answered after a delay and limited per client address and in all (edge/core/guesses.py):
past the limit every guess is answered 429 with how long to wait, however many connections send them."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge.core.guesses import Refusal, WrongGuesses
from edge.core.webauth import PagePassword
from trainer.studio.limits import StudioLimits

COOKIE = "studio_session"
CSRF_HEADER = "x-studio"
OPEN_PATHS = ("/login", "/static/studio.css")


def class_password(password: str | None, limits: StudioLimits | None = None) -> PagePassword:
    limits = limits or StudioLimits()
    guesses = WrongGuesses(limits.max_wrong_passwords_per_client, limits.max_wrong_passwords_total)
    return PagePassword(password, COOKIE, CSRF_HEADER, guesses)


def _too_many(refusal: Refusal) -> HTMLResponse:
    who = "on this Studio, from all computers together," if refusal.everyone else "from this computer"
    page = login_page(f"Too many wrong passwords {who} in the last minute. Wait {refusal.wait_s} seconds, then try again "
                      "(ask your teacher for the password).", 429)
    page.headers["retry-after"] = str(refusal.wait_s)
    return page


def login_page(message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>EdgeTeach Studio: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/studio.css"></head>
<body><main class="login"><h1>EdgeTeach Studio</h1><p>Ask your teacher for the class password.</p>{note}
<form method="post" action="/login"><label>Class password <input type="password" name="password" autofocus required></label>
<button type="submit">Sign in</button></form></main></body></html>""", status_code=status)


async def login(request: Request, password: PagePassword) -> Response:
    if request.method == "GET":
        return login_page()
    if not password.required:
        return RedirectResponse("/", status_code=303)
    outcome = await password.check_login(request)
    if outcome is None:
        return login_page("That is too long to be the class password.", 413)
    if isinstance(outcome, Refusal):
        return _too_many(outcome)
    if not outcome:
        return login_page("That is not the class password. Try again, or ask your teacher.", 401)
    return password.sign_in(RedirectResponse("/", status_code=303))


def refuse(request: Request, password: PagePassword) -> Response | None:
    """The answer for a request that may not go on, or None."""
    path = request.url.path
    if path in OPEN_PATHS:
        return None
    if not password.signed_in(request):
        if path.startswith("/api/"):
            return JSONResponse({"error": "sign in with the class password first (open the Studio's page)"}, 401)
        return RedirectResponse("/login", status_code=303)
    if not password.csrf_ok(request):
        return JSONResponse({"error": f"requests that change something must carry the header '{CSRF_HEADER}: 1'"}, 403)
    return None
