"""``delivery.api`` asks the hub to call the system's own API: only over HTTP, only where the
hub has a client for it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from hub.app import check_config_file
from hub.delivery import DeliveryService
from routes import EXAMPLE_CONFIG
from routes.config import HubConfig
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


def test_bolcom_over_http_may_use_its_api(tmp_path: Path) -> None:
    http = {"transport": "http", "url": "https://api.bol.com", "api": True}
    assert check_config_file(written(tmp_path, bolcom=http)) == []


def test_an_api_the_hub_has_no_client_for_is_an_error(tmp_path: Path) -> None:
    http = {"transport": "http", "url": "https://odoo.example.com", "api": True}
    [error] = check_config_file(written(tmp_path, erp=http))
    assert error.location == "channels.erp.delivery.api"
    assert (
        "no API client for adapter 'canonical' (it has: bolcom, sendcloud, shopify, woocommerce)"
        in error.message
    )


def test_bolcoms_login_takes_its_secret_only_over_https_or_to_this_machine(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["bolcom"]["settings"]["login_url"] = "http://login.example.com/token"
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    found = {e.location: e.message for e in check_config(path, env={})}
    assert found["channels.bolcom.settings.login_url"] == (
        "the API secret goes there: it must be https://"
    )
    data["channels"]["bolcom"]["settings"]["login_url"] = "HTTP://login.example.com/token"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "channels.bolcom.settings.login_url" in {e.location for e in check_config(path, env={})}
    data["channels"]["bolcom"]["settings"]["login_url"] = "http://127.0.0.1:9/token"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert check_config(path, env={}) == []


def test_api_needs_http_delivery(tmp_path: Path) -> None:
    errors = check_config(written(tmp_path, **{"webshop-uk": {"api": True}}), env={})
    found = {e.location: e.message for e in errors}
    assert found["channels.webshop-uk.delivery.api"] == (
        "api is only used with transport 'http'; remove it"
    )


def test_api_keys_go_only_over_https_or_to_this_machine(tmp_path: Path) -> None:
    plain = {"transport": "http", "url": "http://shop.example.co.uk", "api": True}
    found = {
        e.location: e.message
        for e in check_config(written(tmp_path, **{"webshop-uk": plain}), env={})
    }
    assert found["channels.webshop-uk.delivery.url"] == (
        "api sends the channel's API key: its url must be https://"
    )
    local = {"transport": "http", "url": "http://127.0.0.1:8080", "api": True}
    assert check_config(written(tmp_path, **{"webshop-uk": local}), env={}) == []


def test_a_hub_asked_for_an_api_client_it_lacks_refuses_to_start_naming_the_channel() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["erp"]["delivery"] = {
        "transport": "http",
        "url": "https://odoo.example.com",
        "api": True,
    }
    config = HubConfig.model_validate(data, context={"env": {}})
    with pytest.raises(ValueError, match=r"channels\.erp\.delivery\.api: the hub has no"):
        DeliveryService(cast(Any, SimpleNamespace(config=config)))


def test_an_api_clients_duration_setting_must_be_seconds(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["bolcom"]["delivery"] = {
        "transport": "http",
        "url": "https://api.bol.com",
        "api": True,
    }
    data["channels"]["bolcom"]["settings"]["process_wait_s"] = "ten"
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    [error] = check_config_file(path)
    assert error.location == "channels.bolcom.settings"
    assert "setting process_wait_s: 'ten' is not zero or a positive number of" in error.message
