"""An adapter of one's own is named in config by its path: loaded, checked, named in types."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters import registry
from hub.app import check_config_file
from routes import EXAMPLE_CONFIG

PLUGINS = Path(__file__).parents[1] / "fixtures" / "plugins"


@pytest.fixture(autouse=True)
def plugins_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("acme_adapter:TRANSLATOR", True),
        ("acme.hub.magento:TRANSLATOR", True),
        ("shopify", False),
        ("acme:", False),
        (":TRANSLATOR", False),
        ("acme-hub:TRANSLATOR", False),
    ],
)
def test_a_path_is_module_colon_attribute(key: str, path: bool) -> None:
    assert registry.is_path(key) is path


def test_a_plugin_loads_by_its_path_and_its_native_types_carry_its_own_name() -> None:
    translator = registry.load("acme_adapter:TRANSLATOR")
    assert translator is not None and translator.name == "acme"
    assert translator.native_events() == frozenset({"order"})
    assert registry.native_name("acme_adapter:TRANSLATOR") == "acme"
    assert registry.native_name("shopify") == "shopify"


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("no_such_module:TRANSLATOR", "cannot load adapter 'no_such_module:TRANSLATOR': No module"),
        ("acme_adapter:MISSING", "cannot load adapter 'acme_adapter:MISSING'"),
        ("acme_adapter:order", "adapter 'acme_adapter:order' is not a translator"),
    ],
)
def test_a_path_that_does_not_lead_to_a_translator_is_refused(key: str, said: str) -> None:
    with pytest.raises(LookupError, match=said):
        registry.load(key)


def test_config_check_names_each_adapter_it_cannot_load(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["channels"]["webshop-nl"]["adapter"] = "acme_adapter:TRANSLATOR"  # fine
    data["channels"]["webshop-uk"]["adapter"] = "no_such_module:TRANSLATOR"
    data["channels"]["warehouse"]["adapter"] = "magento"
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    found = {e.location: e.message for e in check_config_file(path)}
    assert set(found) == {"channels.webshop-uk.adapter", "channels.warehouse.adapter"}
    assert found["channels.webshop-uk.adapter"].startswith(
        "cannot load adapter 'no_such_module:TRANSLATOR'"
    )
    assert found["channels.warehouse.adapter"].startswith("unknown adapter 'magento'; known: ")
    assert found["channels.warehouse.adapter"].endswith(
        "or a module:attribute path to a translator of your own"
    )
