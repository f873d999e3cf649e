"""One exception root for ``proxy/``: every exception class defined in its modules
descends from :class:`proxy.errors.ProxyError`, none is LiteLLM's ``ProxyException`` (the
HTTP-facing ones become one in proxy.plugin.refusals: test_refusals_units.py), and the tree
in ``proxy/errors.py`` names them all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

from litellm.proxy._types import ProxyException

import proxy
from proxy.errors import ProxyError, RequestRefused


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(proxy.__path__, "proxy."):
        yield importlib.import_module(info.name)


def _classes(owner: object, module: str) -> Iterator[type]:
    for value in vars(owner).values():
        if inspect.isclass(value) and value.__module__ == module:
            yield value
            yield from _classes(value, module)


def _exceptions() -> list[type[BaseException]]:
    found = {cls for module in _modules() for cls in _classes(module, module.__name__)
             if issubclass(cls, BaseException)}
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


def test_every_proxy_exception_descends_from_the_root() -> None:
    found = _exceptions()
    assert len(found) >= 20, [cls.__qualname__ for cls in found]  # the walk saw them
    strays = [f"{cls.__module__}.{cls.__qualname__}" for cls in found
              if not issubclass(cls, ProxyError)]
    assert not strays, f"not under proxy.errors.ProxyError: {strays}"


def test_no_class_of_ours_is_a_litellm_proxy_exception() -> None:
    """Refusals become LiteLLM's ``ProxyException`` in proxy.plugin.refusals only."""
    found = _exceptions()
    assert sum(issubclass(cls, RequestRefused) for cls in found) >= 15
    for cls in found:
        assert not issubclass(cls, ProxyException), f"{cls.__module__}.{cls.__qualname__}"


def test_the_tree_in_the_docstring_names_every_class() -> None:
    import proxy.errors

    doc = proxy.errors.__doc__ or ""
    missing = [cls.__qualname__ for cls in _exceptions() if cls.__qualname__ not in doc]
    assert not missing, f"add to the tree in proxy/errors.py: {missing}"
