"""Registries of plug-ins: architectures, store backends and source kinds, each found by name.

Built-in plug-ins register themselves when their package is imported. Others register with
`Registry.register` (a test, a DAG file, a deployment's own module), or come from an installed
package that declares an entry point in the registry's group, for example in its pyproject.toml:

    [project.entry-points."captcha_training.architectures"]
    tiny = "my_package.tiny:TinyArchitecture"
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Plug-ins of one kind, by name. Entry points of `group` are loaded on the first lookup."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._plugins: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str, plugin: T, replace: bool = False) -> T:
        """Add `plugin` under `name`; a name already taken is refused unless `replace`."""
        if not replace and name in self._plugins and self._plugins[name] is not plugin:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._plugins[name] = plugin
        return plugin

    def unregister(self, name: str) -> None:
        """Remove the plug-in registered under `name`, if any."""
        self._plugins.pop(name, None)

    def get(self, name: str) -> T | None:
        """The plug-in registered under `name`, or None."""
        self._load_entry_points()
        return self._plugins.get(name)

    def names(self) -> list[str]:
        """Registered names, built-ins first, in the order they were registered."""
        self._load_entry_points()
        return list(self._plugins)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for point in entry_points(group=self.group):
            if point.name not in self._plugins:
                self._plugins[point.name] = point.load()
