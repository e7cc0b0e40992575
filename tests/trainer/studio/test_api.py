"""The Studio's HTTP API over real HTTP: projects, classes, samples, the class password and the CSRF header,
and every bad input refused with a clear 4xx and nothing written outside the project."""

from __future__ import annotations

import io
import re
import socket
from pathlib import Path

import pytest
from PIL import Image

from tests.trainer.studio.client import Client
from tests.trainer.studio.conftest import Running, files_under, jpeg, start
from trainer.cli import main
from trainer.studio.app import STATIC


def test_projects_and_classes(studio: Running) -> None:
    c = studio.client
    assert c.get("/api/projects").json() == {"projects": []}
    assert c.post("/api/projects", {"name": "recycling"}).status == 201
    assert c.post("/api/projects", {"name": "recycling"}).status == 409
    assert c.get("/api/projects").json()["projects"][0]["name"] == "recycling"
    assert c.post("/api/projects/recycling/classes", {"name": "paper"}).status == 201
    assert c.post("/api/projects/recycling/classes", {"name": "glass"}).status == 201
    # renamed and deleted on disk: the folders `trainer train` reads
    assert c.request("PATCH", "/api/projects/recycling/classes/glass", json_body={"name": "bottles"}).status == 200
    assert sorted(p.name for p in studio.project("recycling").iterdir() if p.is_dir()) == ["bottles", "paper"]
    assert c.request("DELETE", "/api/projects/recycling/classes/paper").status == 200
    summary = c.get("/api/projects/recycling").json()
    assert [k["name"] for k in summary["classes"]] == ["bottles"] and summary["has_model"] is False
    assert (studio.project("recycling") / "studio.json").is_file()


def test_unknown_project_or_class_is_404(studio: Running) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    for method, path in (("GET", "/api/projects/nope"), ("POST", "/api/projects/nope/classes"),
                         ("DELETE", "/api/projects/p/classes/nope"), ("GET", "/api/projects/p/report"),
                         ("GET", "/api/projects/p/bundle.zip"), ("GET", "/api/projects/p/classes/nope/samples/x.jpg")):
        reply = c.request(method, path, json_body={"name": "x"} if method == "POST" else None)
        assert reply.status == 404, (method, path, reply.body)
        assert reply.json()["error"]


def test_names_that_leave_the_project_are_refused(studio: Running, tmp_path: Path) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    c.post("/api/projects/p/classes", {"name": "ok"})
    before = files_under(tmp_path)
    for bad in ("../escape", "..", "a/b", ".hidden", "_background_noise_", "", "x" * 61, 7):
        assert c.post("/api/projects", {"name": bad}).status == 400, bad
        reply = c.post("/api/projects/p/classes", {"name": bad})
        assert reply.status == 400 and "name" in reply.json()["error"], (bad, reply.body)
        assert c.request("PATCH", "/api/projects/p/classes/ok", json_body={"name": bad}).status == 400
    # `..` as a path segment: never the projects folder or its parent
    assert c.request("DELETE", "/api/projects/p/classes/..").status in (404, 405)
    assert c.request("DELETE", "/api/projects/p/classes/%2E%2E").status in (404, 405)
    assert c.get("/api/projects/..").status == 404
    assert files_under(tmp_path) == before


def test_uploads_are_checked_and_saved_inside_the_class(studio: Running, tmp_path: Path) -> None:
    c = studio.client
    c.post("/api/projects", {"name": "p"})
    c.post("/api/projects/p/classes", {"name": "red"})
    reply = c.post("/api/projects/p/classes/red/samples?filename=../../../evil%20name.png", body=jpeg((0, 0, 255)))
    assert reply.status == 201, reply.body
    name = reply.json()["name"]
    # the name is made by the server: no path, the suffix of what the bytes are (a JPEG), not of the given name
    assert re.fullmatch(r"evil_name_[0-9a-f]{8}\.jpg", name), name
    assert (studio.project("p") / "red" / name).is_file()
    assert c.get(f"/api/projects/p/classes/red/samples/{name}").body == (studio.project("p") / "red" / name).read_bytes()
    photo = io.BytesIO()
    Image.new("RGB", (3000, 2000), (200, 30, 30)).save(photo, "JPEG", quality=95)
    big = c.post("/api/projects/p/classes/red/samples?filename=photo.jpg", body=photo.getvalue()).json()["name"]
    thumb = c.get(f"/api/projects/p/classes/red/samples/{big}?size=thumb")
    assert thumb.status == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.body)) as small:
        assert max(small.size) == 112 and small.size[0] > small.size[1]  # the page's thumbnail, not the photo
    c.request("DELETE", f"/api/projects/p/classes/red/samples/{big}")
    before = files_under(tmp_path)
    not_image = c.post("/api/projects/p/classes/red/samples?filename=list.jpg", body=b"eggs, milk\n" * 100)
    assert not_image.status == 415 and "not an image" in not_image.json()["error"]
    assert c.post("/api/projects/p/classes/red/samples", body=b"").status == 400
    huge = io.BytesIO()
    Image.new("L", (8000, 8000)).save(huge, "PNG")  # 64 megapixels in a few tens of KB
    too_big = c.post("/api/projects/p/classes/red/samples?filename=huge.png", body=huge.getvalue())
    assert too_big.status == 413 and "megapixels" in too_big.json()["error"], too_big.body
    assert c.post("/api/projects/p/classes/nope/samples", body=jpeg((0, 0, 255))).status == 404
    assert files_under(tmp_path) == before  # the refused ones left nothing behind, not even a temporary file
    assert c.request("DELETE", f"/api/projects/p/classes/red/samples/{name}").status == 200
    assert not (studio.project("p") / "red" / name).exists()
    assert c.request("DELETE", "/api/projects/p/classes/red/samples/..%2F..%2Fstudio.json").status == 404
    assert (studio.project("p") / "studio.json").is_file()


def test_a_50_mb_upload_is_refused_before_it_is_read(studio: Running, tmp_path: Path) -> None:
    studio.client.post("/api/projects", {"name": "p"})
    studio.client.post("/api/projects/p/classes", {"name": "red"})
    before = files_under(tmp_path)
    # only the head is sent: the answer must come from the declared length, not after 50 MB arrive
    with socket.create_connection(("127.0.0.1", studio.server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/projects/p/classes/red/samples?filename=big.jpg HTTP/1.1\r\nHost: x\r\nX-Studio: 1\r\n"
                     b"Content-Length: 52428800\r\n\r\n")
        head = b""
        while b"most accepted" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    assert head.decode().startswith("HTTP/1.1 413"), head
    assert b"52428800 bytes" in head and b"most accepted" in head
    assert files_under(tmp_path) == before


def test_changes_need_the_studio_header(studio: Running) -> None:
    # a page on another site cannot add this header without CORS, which the Studio never grants
    reply = Client(studio.server.port, csrf=False).post("/api/projects", {"name": "p"})
    assert reply.status == 403 and "x-studio" in reply.json()["error"]
    assert not studio.project("p").exists()


def test_class_password(tmp_path: Path) -> None:
    server, root = start(tmp_path, password="blue-whale")
    try:
        anonymous = Client(server.port)
        assert anonymous.get("/api/projects").status == 401
        assert anonymous.post("/api/projects", {"name": "p"}).status == 401
        page = anonymous.get("/")
        assert page.status == 303 and page.headers["location"] == "/login"
        assert anonymous.get("/login").status == 200
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        wrong = anonymous.request("POST", "/login", body=b"password=blue-whales", headers=form)
        assert wrong.status == 401 and "set-cookie" not in wrong.headers and b"not the class password" in wrong.body
        right = anonymous.request("POST", "/login", body=b"password=blue-whale", headers=form)
        assert right.status == 303 and "httponly" in right.headers["set-cookie"].lower()
        assert "blue-whale" not in right.headers["set-cookie"]  # a session token, never the password
        cookie = right.headers["set-cookie"].split(";")[0]
        assert Client(server.port, cookie="studio_session=guess").get("/api/projects").status == 401
        signed_in = Client(server.port, cookie=cookie)
        assert signed_in.post("/api/projects", {"name": "p"}).status == 201
        assert signed_in.get("/").status == 200
        assert not any(root.glob("*/..*"))
    finally:
        server.stop()


def test_a_lan_address_without_password_does_not_start(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("EDGETEACH_STUDIO_PASSWORD", raising=False)
    assert main(["studio", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "class password" in caplog.text


def test_the_page_loads_nothing_from_the_internet(studio: Running) -> None:
    served = [studio.client.get("/").body.decode()]
    served += [studio.client.get(f"/static/{p.name}").body.decode() for p in STATIC.iterdir()]
    assert len(served) >= 4
    allowed = {"http://www.w3.org/2000/svg"}  # the SVG namespace: an XML name, never fetched
    found = {url for text in served for url in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text)} - allowed
    assert not found, found
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", "".join(served))
