"""The `Setting` descriptor and the slotted base every group of settings derives from (no I/O, no state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")

Routes = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
"""``task_routes``: one table (task name or glob -> queue or route dict) or several, tried in order."""

NUM = (int, float)
OPT_NUM = (int, float, type(None))
OPT_STR = (str, type(None))


class SettingsBase:
    """Where the values live: the groups below declare settings on subclasses with ``__slots__ = ()``."""

    __slots__ = ("_frozen", "_values")
    _values: dict[str, Any]
    _frozen: bool

    def __setitem__(self, name: str, value: Any) -> None:
        raise NotImplementedError


class Setting(Generic[T]):
    """One setting, declared on `Settings`: its default, the runtime types its value may have, what it does.

    Reading it on a `Settings` gives the value set (or the default); setting it checks the value first.
    """

    __slots__ = ("default", "doc", "name", "types")

    def __init__(self, default: T, types: tuple[type, ...], doc: str = "") -> None:
        self.default = default
        self.types = types
        self.doc = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, conf: None, owner: type | None = None) -> Setting[T]: ...
    @overload
    def __get__(self, conf: SettingsBase, owner: type | None = None) -> T: ...
    def __get__(self, conf: SettingsBase | None, owner: type | None = None) -> Setting[T] | T:
        if conf is None:
            return self
        value: T = conf._values.get(self.name, self.default)
        return value

    def __set__(self, conf: SettingsBase, value: T) -> None:
        conf[self.name] = value
