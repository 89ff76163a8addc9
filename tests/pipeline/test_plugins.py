"""Plug-in registries: names are unique, and installed packages add plug-ins through entry points."""
import sys

import pytest

from tasks.pipeline.plugins import Registry


def test_a_name_is_registered_once_unless_replaced():
    registry = Registry("thing", "captcha_training.test_things_none")
    first, second = object(), object()
    registry.register("a", first)
    registry.register("a", first)  # the same plug-in again is harmless
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        registry.register("a", second)
    registry.register("a", second, replace=True)
    assert registry.get("a") is second and registry.get("b") is None
    registry.unregister("a")
    assert registry.names() == []


def test_an_installed_package_adds_plug_ins_through_its_entry_points(tmp_path, monkeypatch):
    (tmp_path / "extra_things.py").write_text("THING = 'from an entry point'\n")
    dist = tmp_path / "extra_things-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-things\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[captcha_training.test_things]\nextra = extra_things:THING\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("thing", "captcha_training.test_things")
    registry.register("built-in", "registered in code")
    assert registry.names() == ["built-in", "extra"]
    assert registry.get("extra") == "from an entry point"
    sys.modules.pop("extra_things", None)
