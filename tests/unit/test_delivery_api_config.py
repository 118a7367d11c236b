"""``delivery.api`` asks the hub to call the system's own API: only over HTTP, only where the
hub has a client for it."""

from __future__ import annotations

from pathlib import Path

import yaml

from hub.app import check_config_file
from routes import EXAMPLE_CONFIG
from routes.loader import check_config


def written(tmp_path: Path, **delivery: object) -> Path:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for name, settings in delivery.items():
        data["channels"][name]["delivery"] = settings
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_woocommerce_over_http_may_use_its_api(tmp_path: Path) -> None:
    http = {"transport": "http", "url": "https://shop.example.co.uk", "api": True}
    assert check_config_file(written(tmp_path, **{"webshop-uk": http})) == []


def test_an_api_the_hub_has_no_client_for_is_an_error(tmp_path: Path) -> None:
    http = {"transport": "http", "url": "https://example-nl.myshopify.com", "api": True}
    [error] = check_config_file(written(tmp_path, **{"webshop-nl": http}))
    assert error.location == "channels.webshop-nl.delivery.api"
    assert "no API client for adapter 'shopify' (it has: sendcloud, woocommerce)" in error.message


def test_api_needs_http_delivery(tmp_path: Path) -> None:
    errors = check_config(written(tmp_path, **{"webshop-uk": {"api": True}}), env={})
    found = {e.location: e.message for e in errors}
    assert found["channels.webshop-uk.delivery.api"] == (
        "api is only used with transport 'http'; remove it"
    )
