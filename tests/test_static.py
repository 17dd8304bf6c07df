"""The web UI is served from the package at `/`."""

from __future__ import annotations

import re

import httpx


def test_index_and_assets(catalog_url: str, http: httpx.Client) -> None:
    r = http.get(catalog_url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    script = re.search(r'src="\.?/?(assets/[^"]+\.js)"', r.text)
    assert script, r.text[:500]
    js = http.get(catalog_url + "/" + script.group(1))
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"]
    head = http.head(catalog_url + "/")
    assert head.status_code == 200 and head.content == b""


def test_unknown_paths_and_methods(catalog_url: str, http: httpx.Client) -> None:
    assert http.get(catalog_url + "/assets/nope.js").status_code == 404
    assert http.get(catalog_url + "/a/b").status_code == 404
    assert http.get(catalog_url + "/../../etc/passwd").status_code == 404
    assert http.post(catalog_url + "/", content=b"x").status_code == 405
