"""Loading scenarios: from a YAML file, by built-in name, or from a dict; every problem becomes one
:class:`ScenarioError` naming the file, the line, the key path and what is wrong.

Built-in scenarios are YAML files in ``simulator/scenarios/builtin/``, found at run time through
importlib.resources so they work from an installed package as well as from the checkout."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Union

import yaml
from pydantic import ValidationError

from simulator.scenarios.errors import ScenarioError
from simulator.scenarios.schema import PRICE_PATH_TYPES, Scenario, did_you_mean

BUILTIN_PACKAGE = "simulator.scenarios"
BUILTIN_FOLDER = "builtin"
SCENARIO_SUFFIXES = (".yaml", ".yml")

# Further problems listed after the first in one error, so a file with many mistakes stays readable.
MAX_LISTED_PROBLEMS = 6


class ScenarioInfo(NamedTuple):
    name: str
    description: str


# ---------------------------------------------------------------------------------------------
# YAML with line numbers


class _ScenarioYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping_without_duplicates(loader: _ScenarioYamlLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            seen_at = first_line.get(key)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if seen_at is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first given on line {seen_at})", key_node.start_mark
            )
        first_line[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_ScenarioYamlLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_without_duplicates
)


def _record_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    """Maps each key path (as a tuple of strings) to the 1-based line where it is written."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = path + (str(key_node.value),)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (str(index),)
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines)


def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """The document's data and the line of every key path; YAML errors as ScenarioError."""
    loader = _ScenarioYamlLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise ScenarioError(f"YAML syntax error: {problem}{column}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"YAML syntax error: {exc}", source=source) from None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {(): 1}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


# ---------------------------------------------------------------------------------------------
# Validation errors in people's words


def format_key_path(loc: tuple) -> str:
    """`('markets', 2, 'depth2pct')` -> `markets[2].depth2pct`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _show(value: Any) -> str:
    """A value as the author wrote it in YAML."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _without_union_tags(loc: tuple) -> tuple:
    # Pydantic puts the chosen variant of a discriminated union into the location
    # (price_paths.BTC.gbm.vol); the author never wrote it.
    if len(loc) > 2 and loc[0] == "price_paths" and loc[2] in PRICE_PATH_TYPES:
        loc = loc[:2] + loc[3:]
    # ... and a target's choice between a number and a draw (legs.0.to.draw.low).
    for i in range(len(loc) - 1):
        if loc[i] in ("to", "to_price") and loc[i + 1] in ("number", "draw"):
            return loc[:i + 1] + loc[i + 2:]
    return loc


def _describe(error: Mapping[str, Any]) -> tuple[tuple, str]:
    """(key path, problem) of one pydantic error."""
    kind = error["type"]
    loc = _without_union_tags(tuple(error["loc"]))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "perpsim":
        return loc + tuple(ctx.get("at", ())), ctx["problem"]
    if kind == "missing":
        return loc, f"missing required key '{loc[-1]}'" if loc else "missing required key"
    if kind == "extra_forbidden":
        return loc, f"unknown key '{loc[-1]}'"
    if kind == "union_tag_not_found":
        return loc + ("type",), f"missing key 'type' (one of: {', '.join(PRICE_PATH_TYPES)})"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return loc + ("type",), (
            f"unknown price path type '{tag}'{did_you_mean(tag, list(PRICE_PATH_TYPES))}; "
            f"expected one of: {', '.join(PRICE_PATH_TYPES)}"
        )
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return loc, f"should be one of {', '.join(options)}, got {_show(value)}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return loc, f"should be a mapping of keys to values, got {_show(value)}"
    if kind in ("list_type", "tuple_type"):
        return loc, f"should be a list, got {_show(value)}"
    if kind == "int_type" and isinstance(value, float):
        return loc, f"should be a whole number, got {_show(value)}"
    if kind == "too_short" and isinstance(value, (list, dict)):
        least = ctx.get("min_length", 1)
        return loc, f"needs at least {least} entr{'y' if least == 1 else 'ies'}, got {len(value)}"
    if kind == "string_too_short":
        return loc, "should not be empty"
    if kind == "finite_number":
        return loc, f"should be a finite number, got {_show(value)}"
    message = str(error["msg"])
    message = re.sub(r"^Input should be (a valid )?", "should be ", message)
    message = re.sub(r"^Value error, ", "", message)
    message = message.replace("should be number", "should be a number")
    message = message.replace("should be integer", "should be a whole number")
    message = message[0].lower() + message[1:] if message else message
    if not isinstance(value, (dict, list)):
        message += f", got {_show(value)}"
    return loc, message


def _line_of(loc: tuple, lines: Mapping[tuple, int]) -> Optional[int]:
    key = tuple(str(part) for part in loc)
    while key not in lines and key:
        key = key[:-1]
    return lines.get(key)


def _scenario_error(exc: ValidationError, source: str, lines: Mapping[tuple, int]) -> ScenarioError:
    located = []
    for error in exc.errors():
        loc, problem = _describe(error)
        located.append((format_key_path(loc), _line_of(loc, lines), problem))
    key_path, line, problem = located[0]
    more = []
    for other_path, other_line, other_problem in located[1:MAX_LISTED_PROBLEMS]:
        where = f"line {other_line}: " if other_line is not None else ""
        more.append(f"{where}{other_path + ': ' if other_path else ''}{other_problem}")
    if len(located) > MAX_LISTED_PROBLEMS:
        more.append(f"... and {len(located) - MAX_LISTED_PROBLEMS} more")
    return ScenarioError(problem, source=source, key_path=key_path or None, line=line, more=more)


# ---------------------------------------------------------------------------------------------
# Public entry points


def scenario_from_dict(
    data: Any,
    source: str = "<scenario>",
    base_dir: Optional[Union[str, Path]] = None,
    lines: Optional[Mapping[tuple, int]] = None,
) -> Scenario:
    """Validates already-parsed scenario data (CSV paths are relative to `base_dir`)."""
    if not isinstance(data, dict):
        raise ScenarioError(
            f"a scenario is a mapping of keys (name, steps, markets, ...), got {_show(data)}", source=source, line=1
        )
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": str(base_dir) if base_dir else None})
    except ValidationError as exc:
        raise _scenario_error(exc, source, lines or {}) from None
    scenario._source = source
    return scenario


def _builtin_folder():
    return resources.files(BUILTIN_PACKAGE).joinpath(BUILTIN_FOLDER)


def _builtin_files() -> dict[str, Any]:
    return {
        entry.name.rsplit(".", 1)[0]: entry
        for entry in _builtin_folder().iterdir()
        if entry.is_file() and entry.name.endswith(SCENARIO_SUFFIXES)
    }


def list_scenarios() -> list[ScenarioInfo]:
    """The built-in scenarios, sorted by name, with the first line of their description."""
    infos = []
    for name, entry in sorted(_builtin_files().items()):
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            data = {}
        description = str(data.get("description", "")).strip() if isinstance(data, dict) else ""
        infos.append(ScenarioInfo(name, description.splitlines()[0] if description else ""))
    return infos


def load_scenario(path_or_name: Union[str, Path]) -> Scenario:
    """A scenario from a YAML file path, or a built-in one by name (``"oct-2025"``).

    A string is a path when it names an existing file or ends in .yaml/.yml or contains a path
    separator; otherwise it is a built-in name. Raises ScenarioError, never a raw YAML or pydantic
    error."""
    text_arg = str(path_or_name)
    looks_like_path = (
        isinstance(path_or_name, Path)
        or text_arg.endswith(SCENARIO_SUFFIXES)
        or "/" in text_arg
        or "\\" in text_arg
        or Path(text_arg).is_file()
    )
    if looks_like_path:
        path = Path(text_arg).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ScenarioError("scenario file not found", source=source) from None
        except IsADirectoryError:
            raise ScenarioError("is a folder, not a scenario file", source=source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read the scenario file: {exc}", source=source) from None
        base_dir: Optional[Path] = path.resolve().parent
    else:
        builtins = _builtin_files()
        entry = builtins.get(text_arg)
        if entry is None:
            names = sorted(builtins)
            raise ScenarioError(
                f"no built-in scenario named '{text_arg}'{did_you_mean(text_arg, names)}; "
                f"built-in: {', '.join(names)} (or give the path of a .yaml file)",
                source=text_arg,
            )
        source = str(entry)
        text = entry.read_text(encoding="utf-8")
        # A built-in read from a zip has no folder on disk; built-ins then cannot use CSV files.
        base_dir = Path(str(entry)).parent if isinstance(entry, Path) else None
    data, lines = parse_yaml(text, source)
    return scenario_from_dict(data, source=source, base_dir=base_dir, lines=lines)


def with_overrides(scenario: Scenario, source: str = "command line", **changes: Any) -> Scenario:
    """A copy of `scenario` with top-level keys replaced (``seed=7, accounts=100``), validated
    again: an override is checked like a value in the file."""
    data = scenario.model_dump(exclude_unset=True)
    data.update({key: value for key, value in changes.items() if value is not None})
    try:
        updated = Scenario.model_validate(data, context={"base_dir": None})
    except ValidationError as exc:
        raise _scenario_error(exc, source, {}) from None
    updated._source = scenario.source
    return updated


def with_settings(scenario: Scenario, settings: Mapping[str, Any], source: str = "command line") -> Scenario:
    """A copy of `scenario` with each dotted-path setting applied, validated again.

    A path walks the file's keys: ``population.cross_fraction``; list items by index, by `name`
    (``markets.BTC.policy``) or all of them with ``*`` (``markets.*.policy``); ``*`` on a mapping
    means every key it has (``price_paths.*.noise_vol``). Keys the file leaves at their default
    may be set; a path that cannot be followed, or a value the schema refuses, is a ScenarioError
    naming the setting."""
    data = copy.deepcopy(scenario.model_dump(exclude_unset=True))
    for path, value in settings.items():
        parts = path.split(".")
        if not path or any(not part for part in parts):
            raise ScenarioError(f"'{path}' is not a dotted key path (e.g. markets.*.policy)", source=source)
        _assign(data, parts, value, (), path, source)
    try:
        updated = Scenario.model_validate(data, context={"base_dir": None})
    except ValidationError as exc:
        raise _scenario_error(exc, f"{source} ({', '.join(f'{k}={v!r}' for k, v in settings.items())})", {}) from None
    updated._source = scenario.source
    return updated


def _assign(node: Any, parts: list[str], value: Any, at: tuple, path: str, source: str) -> None:
    part, rest = parts[0], parts[1:]

    def problem(text: str) -> ScenarioError:
        where = format_key_path(at) or "the scenario"
        return ScenarioError(f"setting {path}: {where} {text}", source=source)

    if isinstance(node, list):
        if part == "*":
            keys = list(range(len(node)))
        elif part.isdigit():
            if int(part) >= len(node):
                raise problem(f"has {len(node)} entries, no [{part}]")
            keys = [int(part)]
        else:
            names = [item.get("name") for item in node if isinstance(item, dict)]
            keys = [i for i, item in enumerate(node) if isinstance(item, dict) and item.get("name") == part]
            if not keys:
                raise problem(f"has no entry named '{part}'{did_you_mean(part, names)}; "
                              f"use an index, '*' or one of: {', '.join(map(str, names))}")
    elif isinstance(node, dict):
        keys = list(node) if part == "*" else [part]
    else:
        raise problem(f"is a value ({_show(node)}), not a mapping or list: cannot follow '{part}'")
    for key in keys:
        if not rest:
            node[key] = copy.deepcopy(value)
            continue
        if isinstance(node, dict) and key not in node:
            node[key] = {}  # a section the file leaves at its defaults
        _assign(node[key], rest, value, at + (key,), path, source)
