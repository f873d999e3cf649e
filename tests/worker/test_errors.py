"""Every exception class in worker/ descends from WorkerError (the tree is drawn in
worker/errors.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import worker
from worker.errors import AgentConfigError, TenantKeysError, WorkerConfigError, WorkerError


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.iter_modules(worker.__path__, "worker."):
        module = importlib.import_module(info.name)
        found += [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, BaseException) and obj.__module__ == module.__name__]
    return found


def test_every_worker_exception_has_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 7  # the tree in worker/errors.py
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes
              if not issubclass(c, WorkerError)]
    assert strays == []


def test_config_errors_are_told_apart() -> None:
    assert issubclass(TenantKeysError, WorkerConfigError)
    assert not issubclass(TenantKeysError, AgentConfigError)
