"""Packaging: pyproject.toml declares what requirements.txt installs (runtime and tests apart), and the
API docs page is served from local files."""
from __future__ import annotations

import re
import tomllib

import pytest

from tests.conftest import ROOT


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~;\s]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
            for line in requirements if line.strip() and not line.strip().startswith("#")}


def test_pyproject_declares_the_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"].startswith(">=3.")
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    split = next(i for i, line in enumerate(lines) if line.startswith("# Tests"))
    strip = [line.split("#")[0].strip() for line in lines]
    runtime = [line for line in strip[:split] if line]
    tests = [line for line in strip[split:] if line]
    assert sorted(project["dependencies"]) == sorted(runtime)
    assert sorted(project["optional-dependencies"]["test"]) == sorted(tests)
    assert not _names(runtime) & _names(tests)


@pytest.fixture
def client(app):
    return app.test_client()


def test_docs_page_is_served_locally(client):
    page = client.get("/docs/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/openapi.json" in html and "swagger-ui-bundle.js" in html
    # No CDN: the only absolute address is this server's own (Swagger UI's OAuth redirect page).
    assert all(url.startswith("http://localhost/") for url in re.findall(r"https?://[^\"' ]+", html))
    script = client.get("/docs/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.data) > 100_000
    assert client.get("/docs/swagger-ui.css").status_code == 200
