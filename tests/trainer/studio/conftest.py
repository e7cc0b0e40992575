"""A real Studio (Starlette under uvicorn on a free port) per test module, and image helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.trainer.studio.client import Client
from trainer.studio.app import create_app
from trainer.studio.limits import StudioLimits
from trainer.studio.server import StudioServer


@dataclass
class Running:
    root: Path  # the projects folder
    server: StudioServer
    client: Client

    def project(self, name: str) -> Path:
        return self.root / name


def start(tmp: Path, password: str | None = None) -> tuple[StudioServer, Path]:
    root = tmp / "projects"
    server = StudioServer(create_app(root, password, StudioLimits(), cache_dir=tmp / "cache"), "127.0.0.1", 0, StudioLimits())
    server.start()
    return server, root


@pytest.fixture()
def studio(tmp_path: Path) -> Iterator[Running]:
    server, root = start(tmp_path)
    try:
        yield Running(root, server, Client(server.port))
    finally:
        server.stop()


def jpeg(colour: tuple[int, int, int], radius: int = 20) -> bytes:
    image = np.full((120, 160, 3), colour, np.uint8)
    cv2.circle(image, (80, 60), radius, (255, 255, 255), -1)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}
