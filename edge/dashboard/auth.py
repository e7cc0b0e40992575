"""Who may see the dashboard: on 127.0.0.1 everyone on this machine (a password is optional), elsewhere only a
browser that signed in with dashboard.password_file's password (edge/core/webauth.py: session cookie, a delay
after a wrong password and a limit on wrong guesses, a header on every change). Also refused: a Host header
naming another site, which is how a page on the internet would reach a device on the LAN through DNS rebinding."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge.core.guesses import Refusal
from edge.core.hosts import host_allowed
from edge.core.webauth import PagePassword

COOKIE = "edge_dashboard"
CSRF_HEADER = "x-dashboard"
OPEN_PATHS = ("/login", "/static/dashboard.css")


def login_page(device_id: str, message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    name = html.escape(device_id)
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{name}: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/dashboard.css"></head>
<body><main class="login"><h1>{name}</h1><p>This device's dashboard needs its password (dashboard.password_file).</p>{note}
<form method="post" action="/login"><label>Password <input type="password" name="password" autofocus required></label>
<button type="submit">Sign in</button></form></main></body></html>""", status_code=status)


async def login(request: Request, gate: PagePassword, device_id: str) -> Response:
    if request.method == "GET" or not gate.required:
        return login_page(device_id) if gate.required else RedirectResponse("/", status_code=303)
    outcome = await gate.check_login(request)
    if outcome is None:
        return login_page(device_id, "That is too long to be the password.", 413)
    if isinstance(outcome, Refusal):
        page = login_page(device_id, f"Too many wrong passwords in the last minute. Wait {outcome.wait_s} seconds, then try again.", 429)
        page.headers["retry-after"] = str(outcome.wait_s)
        return page
    if not outcome:
        return login_page(device_id, "Wrong password. Try again (it is the first line of dashboard.password_file).", 401)
    return gate.sign_in(RedirectResponse("/", status_code=303))


def refuse(request: Request, gate: PagePassword, host_names: frozenset[str]) -> Response | None:
    """The answer for a request that may not go on, or None."""
    if not host_allowed(request.headers.get("host", ""), host_names):
        return JSONResponse({"error": "the Host header names neither this device nor its address; open the dashboard by "
                             "the device's IP address or hostname"}, 400, headers={"Connection": "close"})
    path = request.url.path
    if path in OPEN_PATHS:
        return None
    if not gate.signed_in(request):
        if path.startswith("/api/"):
            return JSONResponse({"error": "sign in first: open the dashboard's page and give its password"}, 401)
        return RedirectResponse("/login", status_code=303)
    if not gate.csrf_ok(request):
        return JSONResponse({"error": f"requests that change something must carry the header '{CSRF_HEADER}: 1'"}, 403)
    return None
