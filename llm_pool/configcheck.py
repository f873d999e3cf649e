"""Validate a proxy YAML before the proxy sees it (``pool check-config``).

LiteLLM reports a broken config late (at the first request) or as a long
traceback; this names the file, line and alias instead. Checks:

- the file parses as YAML and is a mapping with a non-empty ``model_list``;
- every deployment has ``model_name`` and ``litellm_params.model``;
- every group named in ``fallbacks`` / ``context_window_fallbacks`` exists;
- every ``os.environ/NAME`` reference is set (non-empty) in the environment: an
  error naming the variable and every alias or setting using it (through YAML
  anchors too); a warning with ``allow_missing_env``, except for
  ``general_settings.master_key`` (without it any caller would get in); only ever a
  warning for the optional ``POOL_REDIS_URL`` / ``POOL_NAMESPACE``;
- any ``os.<something>/`` that is not exactly ``os.environ/`` (``os.envrion/``,
  ``os.getenv/``...) is an error: LiteLLM would take it as a literal string;
- ``custom_auth`` and ``callbacks`` name importable objects;
- every deployment has a price (prices fail closed): LiteLLM's own
  ``litellm_params.input_cost_per_token`` / ``output_cost_per_token``, the same in
  ``model_info``, or LiteLLM's cost map for its model; a free deployment says so
  (``model_info: {pool_free: true}`` or an explicit ``input_cost_per_token: 0``). Without
  one every request to it would be recorded at $0 and no budget would move.

:func:`output_limits` lists each alias's output limit (what a request may ask for,
:mod:`proxy.edge.output_limits`), which ``pool check-config`` prints after the checks.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MISSING_ENV", "Problem", "check_config", "check_text", "output_limits"]

ENV_PREFIX = "os.environ/"
# may be unset (the feature is then off, per process): only ever a warning
OPTIONAL_ENV = frozenset({"POOL_REDIS_URL", "POOL_NAMESPACE"})
ENV_TYPO = re.compile(r"^os\.[^/\s]*/", re.IGNORECASE)  # looks like an env reference
MISSING_ENV = "missing-env"
SETTINGS_SECTIONS = ("general_settings", "router_settings", "litellm_settings",
                     "environment_variables")
FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based; 0 when unknown
    message: str
    severity: str = "error"  # "error" | "warning"
    code: str = ""  # MISSING_ENV for an unset environment variable

    def render(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.severity}: {self.message}"


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found: yaml.Node = value_node
                return found
    return None


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            yield from _scalars(child)
    elif isinstance(node, yaml.MappingNode):
        for _, child in node.value:
            yield from _scalars(child)


def _deployments(root: yaml.Node) -> tuple[dict[str, int], list[Problem]]:
    models = _get(root, "model_list")
    if not _items(models):
        return {}, [Problem(_line(models), "model_list is missing or empty")]
    groups: dict[str, int] = {}
    problems: list[Problem] = []
    for index, entry in enumerate(_items(models)):
        name_node = _get(entry, "model_name")
        name = name_node.value if isinstance(name_node, yaml.ScalarNode) else None
        if not name:
            problems.append(Problem(_line(entry), f"model_list[{index}] has no model_name"))
            continue
        groups.setdefault(str(name), _line(name_node))
        params = _get(entry, "litellm_params")
        if not isinstance(_get(params, "model") if params else None, yaml.ScalarNode):
            problems.append(Problem(_line(entry), f"alias {name!r}: litellm_params.model missing"))
    return groups, problems


def _fallback_problems(root: yaml.Node, groups: Mapping[str, int]) -> Iterator[Problem]:
    for section in ("router_settings", "litellm_settings"):
        block = _get(root, section)
        for key in FALLBACK_KEYS:
            for rule in _items(_get(block, key) if block else None):
                if not isinstance(rule, yaml.MappingNode):
                    yield Problem(_line(rule), f"{section}.{key}: each entry is {{group: [..]}}")
                    continue
                for source, targets in rule.value:
                    names = [source, *(_items(targets) or [targets])]
                    for node in names:
                        if isinstance(node, yaml.ScalarNode) and node.value not in groups:
                            yield Problem(_line(node), f"{section}.{key}: alias {node.value!r} "
                                          "is not a model_name in model_list")


def _owner_sources(root: yaml.Node) -> Iterator[tuple[str, yaml.Node]]:
    """(label, node) for everything a scalar can belong to, in file order: aliases first,
    then settings keys, then any other top-level key (e.g. an ``x-`` anchor block)."""
    for entry in _items(_get(root, "model_list")):
        name = _get(entry, "model_name")
        yield (f"alias {name.value!r}" if isinstance(name, yaml.ScalarNode) else "model_list",
               entry)
    assert isinstance(root, yaml.MappingNode)
    for key, block in root.value:
        section = str(key.value)
        if section == "model_list":
            continue
        if isinstance(block, yaml.MappingNode) and section in SETTINGS_SECTIONS:
            yield from ((f"{section}.{k.value}", v) for k, v in block.value)
        else:
            yield section, block


def _owners(root: yaml.Node) -> dict[int, list[str]]:
    """id(scalar node) -> every alias or setting using it. With YAML anchors one node is
    shared by several aliases (``<<: *upstream``): each of them is named."""
    owners: dict[int, list[str]] = {}
    for label, node in _owner_sources(root):
        for scalar in _scalars(node):
            found = owners.setdefault(id(scalar), [])
            if label not in found:
                found.append(label)
    return owners


def _env_refs(root: yaml.Node) -> Iterator[yaml.ScalarNode]:
    seen: set[int] = set()
    for scalar in _scalars(root):
        if id(scalar) not in seen and isinstance(scalar.value, str):
            seen.add(id(scalar))
            yield scalar


def _users(labels: list[str]) -> list[str]:
    """Aliases and settings first; a top-level anchor block only when nothing else uses it."""
    named = [x for x in labels if x.startswith("alias ") or "." in x or x == "model_list"]
    return named or labels


def _env_problems(root: yaml.Node, env: Mapping[str, str],
                  allow_missing: bool) -> Iterator[Problem]:
    owners = _owners(root)
    missing: dict[str, tuple[list[int], list[str]]] = {}
    for scalar in _env_refs(root):
        value = scalar.value.strip()
        if ENV_TYPO.match(value) and not scalar.value.startswith(ENV_PREFIX):
            yield Problem(_line(scalar), f"{', '.join(_users(owners.get(id(scalar), [])))}: "
                          f"{scalar.value!r} is not an environment reference (LiteLLM would "
                          f"use it as a literal string); write os.environ/NAME")
            continue
        if not scalar.value.startswith(ENV_PREFIX):
            continue
        name = scalar.value.removeprefix(ENV_PREFIX)
        if not name:
            yield Problem(_line(scalar), f"{scalar.value!r}: no variable name after os.environ/")
        elif not env.get(name):
            lines, users = missing.setdefault(name, ([], []))
            lines.append(_line(scalar))
            users += [u for u in _users(owners.get(id(scalar), [])) if u not in users]
    for name, (lines, users) in missing.items():
        # without a master key the proxy would let any caller in: never only a warning
        also = f" (also line {', '.join(map(str, lines[1:]))})" if len(lines) > 1 else ""
        text = (f"environment variable {name} is not set; used by "
                f"{', '.join(users) or 'the config'}{also}")
        if name in OPTIONAL_ENV:
            yield Problem(lines[0], text + " (optional: that feature is off)", "warning")
            continue
        severity = ("warning" if allow_missing and "general_settings.master_key" not in users
                    else "error")
        yield Problem(lines[0], text, severity, code=MISSING_ENV)


def _import_problems(root: yaml.Node) -> Iterator[Problem]:
    # importing a plug-in imports litellm, which would try to download its cost map
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    general = _get(root, "general_settings")
    litellm_settings = _get(root, "litellm_settings")
    refs = [_get(general, "custom_auth") if general else None]
    refs += _items(_get(litellm_settings, "callbacks") if litellm_settings else None)
    for node in refs:
        if not isinstance(node, yaml.ScalarNode) or "." not in str(node.value):
            continue  # built-in callback names such as "prometheus"
        module, _, attr = str(node.value).rpartition(".")
        try:
            if not hasattr(importlib.import_module(module), attr):
                yield Problem(_line(node), f"{node.value}: module has no attribute {attr!r}")
        except ImportError as exc:
            yield Problem(_line(node), f"{node.value}: cannot import ({exc})")


UNPRICED = ("has no price: LiteLLM's cost map does not know {model!r} and the YAML declares "
            "none; set litellm_params.input_cost_per_token and output_cost_per_token (0 for "
            "a free deployment), or model_info: {{pool_free: true}}")


def _price_problems(root: yaml.Node, loaded: Any) -> Iterator[Problem]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from proxy.admission.estimate import deployment_price

    entries = loaded.get("model_list") if isinstance(loaded, Mapping) else None
    nodes = _items(_get(root, "model_list"))
    for node, entry in zip(nodes, entries if isinstance(entries, list) else [], strict=False):
        params = entry.get("litellm_params") if isinstance(entry, Mapping) else None
        if not isinstance(params, Mapping) or not params.get("model") \
                or not entry.get("model_name"):
            continue  # reported by _deployments
        if deployment_price(entry) is None:
            info = entry.get("model_info")
            found = info.get("id") if isinstance(info, Mapping) else None
            which = f" deployment {found!r}" if found else ""
            model = params.get("model")
            yield Problem(_line(node), f"alias {entry.get('model_name')!r}{which} "
                          + UNPRICED.format(model=model))


def check_text(text: str, env: Mapping[str, str], *, allow_missing_env: bool = False,
               imports: bool = True) -> list[Problem]:
    """All problems found in the YAML ``text``, in file order."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        loaded = yaml.safe_load(text)  # anchors/merge keys resolve, duplicate-free
    except yaml.YAMLError as exc:
        mark: Any = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        return [Problem(line, f"invalid YAML: {getattr(exc, 'problem', None) or exc}")]
    if not isinstance(root, yaml.MappingNode):
        return [Problem(_line(root), "the config must be a YAML mapping (model_list: ...)")]
    groups, problems = _deployments(root)
    problems += _fallback_problems(root, groups)
    problems += _env_problems(root, env, allow_missing_env)
    if imports:
        problems += _import_problems(root)
        problems += _price_problems(root, loaded)
    return sorted(set(problems), key=lambda p: (p.line, p.message))


def check_config(path: Path, env: Mapping[str, str], *,
                 allow_missing_env: bool = False) -> list[Problem]:
    try:
        text = path.read_text()
    except OSError as exc:
        return [Problem(0, f"cannot read config: {exc.strerror or exc}")]
    return check_text(text, env, allow_missing_env=allow_missing_env)


def output_limits(path: Path) -> dict[str, int | None]:
    """alias -> its output limit (the smallest ``max_output_tokens`` of its deployments,
    declared in ``model_info`` or known to LiteLLM's map; None: unknown, the default
    ``max_tokens`` cap applies), for the chat aliases of a config that parses."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from proxy.admission.estimate import map_output_limit
    from proxy.edge.output_limits import alias_limits

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    entries = loaded.get("model_list") if isinstance(loaded, Mapping) else None
    models = [e for e in entries or [] if isinstance(e, Mapping) and e.get("model_name")]
    known = alias_limits(models, map_output_limit)
    chat = [str(e["model_name"]) for e in models
            if (e.get("model_info") or {}).get("mode") != "embedding"]
    return {alias: known.get(alias) for alias in dict.fromkeys(chat)}
