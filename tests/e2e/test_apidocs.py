"""The documentation pages under /schema reference only this app, which serves the pinned assets
with long-lived caching; every unknown path under /schema is a problem document."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from api.apidocs import ASSETS, ASSETS_PATH, LOCK
from tests.e2e.conftest import Api, problem

PAGES = ("/schema", "/schema/swagger", "/schema/scalar")
# Every URL a page loads: src and href attributes, and url(...) in inline styles.
REFERENCE = re.compile(r"""(?:\bsrc|\bhref)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]*)""")


def references(html: str) -> list[str]:
    return [first or second for first, second in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", PAGES)
async def test_a_page_loads_its_assets_from_the_app_alone(api: Api, page: str) -> None:
    response = await api.call("GET", page, None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    found = references(response.text)
    assert any(url.endswith(".js") for url in found), found
    assert not re.search(r"https?://|//[a-z]", " ".join(found)), found
    for url in found:
        if url.startswith("data:"):
            continue
        assert url.startswith(f"{ASSETS_PATH}/"), url
        asset = await api.call("GET", url, None)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "max-age=31536000, public, immutable"
        assert asset.content == (ASSETS / url.removeprefix(f"{ASSETS_PATH}/")).read_bytes()


async def test_asset_urls_name_the_pinned_version(api: Api) -> None:
    lock = json.loads(LOCK.read_text())
    html = (await api.call("GET", "/schema", None)).text + (
        await api.call("GET", "/schema/scalar", None)
    ).text
    for ui, pin in lock.items():
        assert f"{ASSETS_PATH}/{ui}-{pin['version']}/" in html, ui


@pytest.mark.parametrize(
    "path",
    [
        "/schema/redoc",
        "/schema/elements",
        "/schema/rapidoc",
        "/schema/nope",
        "/schema/openapi.yaml",
        "/schema/a/b",
        "/schema/assets",
        "/schema/assets/nope.js",
        "/schema/assets/swagger-ui-0.0.0/swagger-ui.css",
        "/schema/assets/%2e%2e/assets.lock.json",
    ],
)
async def test_an_unknown_path_under_schema_is_a_problem(api: Api, path: str) -> None:
    response = await api.call("GET", path, None)
    problem(response, 404, "not-found")


def test_the_served_files_are_exactly_the_pinned_ones() -> None:
    lock = json.loads(LOCK.read_text())
    expected = {
        f"{ui}-{pin['version']}/{path.rsplit('/', 1)[-1]}": digest
        for ui, pin in lock.items()
        for path, digest in pin["files"].items()
    }
    on_disk = {
        str(file.relative_to(ASSETS)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in ASSETS.rglob("*")
        if file.is_file()
    }
    assert on_disk == expected
    for pin in lock.values():
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", pin["integrity"]), pin
