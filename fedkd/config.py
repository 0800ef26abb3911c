"""Typed experiment configs from TOML.

An experiment file names its kind in ``[run] kind = "..."``; the kind (found through the
``fedkd.experiments`` entry-point group, so a plug-in package can add kinds) declares which sections the
file may have, each a dataclass with defaults. Loading checks every key against those dataclasses: an
unknown section or key, a value of the wrong type or a choice outside a ``Literal`` is a ``ConfigError``
that names the key and what is allowed, before anything expensive starts.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fedkd.errors import ConfigError

if TYPE_CHECKING:
    from fedkd.runs import RunDir

ENTRY_POINT_GROUP = "fedkd.experiments"


@dataclass
class RunSection:
    """What every experiment has: its kind, a name for its run directory, the one seed, the device and the
    precision of its training forward passes (``fp32``, or ``bf16`` autocast on CUDA: ``fedkd.precision``)."""

    kind: str = ""
    name: str = "run"
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"

    def validate(self) -> None:
        from fedkd.devices import check_device_name
        from fedkd.precision import check_precision

        if not self.kind:
            raise ConfigError('run.kind is missing: name the experiment kind, e.g. kind = "federated"')
        if self.seed < 0:
            raise ConfigError(f"run.seed must be >= 0, got {self.seed}")
        check_device_name(self.device)
        check_precision(self.precision, self.device)


@dataclass
class DataSection:
    """The dataset an experiment draws on and the fraction held out as its test split."""

    dataset: str = "mnist5k"
    path: str = ""
    test_fraction: float = 0.2

    def validate(self) -> None:
        from fedkd.data import DATASETS

        require_choice("data.dataset", self.dataset, DATASETS)
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"data.test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class ExperimentKind:
    """A kind of experiment: the config sections it reads and the function that runs it.

    ``check``, if given, runs every check that needs more than the config itself (data, models, saved
    artifacts) before the run directory is written or any process is launched, so a bad input costs seconds.
    """

    sections: Mapping[str, type]
    run: Callable[[ExperimentConfig, RunDir], None]
    description: str = ""
    check: Callable[[ExperimentConfig], None] | None = None


@dataclass
class ExperimentConfig:
    """A validated experiment: ``cfg.run`` plus one typed object per section (``cfg.federation``...)."""

    run: RunSection
    sections: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"config has no section {name!r}; sections: {sorted(sections)}")

    @property
    def kind(self) -> ExperimentKind:
        return experiment_kind(self.run.kind)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (tuples as lists), the shape of the TOML file."""
        out = {"run": _section_to_dict(self.run)}
        out.update({name: _section_to_dict(sec) for name, sec in self.sections.items()})
        return out

    def flat(self) -> dict[str, Any]:
        """``{"section.key": value}``: the form Flower's run_config and ConfigRecord carry."""
        return {f"{sec}.{key}": value for sec, body in self.to_dict().items() for key, value in body.items()}

    def replace(self, overrides: Mapping[str, Any] | list[str]) -> ExperimentConfig:
        """A new validated config with ``{"a.b": value}`` or ``["a.b=value"]`` overrides applied."""
        return load_config(self.to_dict(), overrides)


def require_choice(key: str, value: str, allowed: Iterable[str]) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is one of ``allowed`` (a registry's names)."""
    allowed = sorted(allowed)
    if value not in allowed:
        raise ConfigError(f"{key} = {value!r} is not registered; choose one of {allowed}")


def experiment_kinds() -> dict[str, str]:
    """Installed experiment kinds (name -> entry point), from the entry-point group."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def experiment_kind(name: str) -> ExperimentKind:
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise ConfigError(
            f"run.kind = {name!r} is not an installed experiment kind; choose one of {sorted(experiment_kinds())}"
        )
    kind = matches[0].load()
    if not isinstance(kind, ExperimentKind):
        raise ConfigError(f"entry point {matches[0].value!r} for run.kind = {name!r} is not an ExperimentKind")
    return kind


def load_config(
    source: str | Path | Mapping[str, Any] | ExperimentConfig,
    overrides: Mapping[str, Any] | list[str] | None = None,
) -> ExperimentConfig:
    """Read, override and validate an experiment config.

    ``source`` is a TOML path, a nested dict, or an ``ExperimentConfig`` (returned as is when there are no
    overrides). ``overrides`` are ``{"section.key": value}`` or CLI-style ``["section.key=value"]`` where the
    value is parsed as TOML (``3``, ``0.5``, ``true``, ``[0.3, 0.4]``) and falls back to a plain string.
    """
    if isinstance(source, ExperimentConfig):
        if not overrides:
            return source
        source = source.to_dict()
    raw = _read_toml(Path(source)) if isinstance(source, (str, Path)) else _deep_copy(source)
    for dotted, value in parse_overrides(overrides).items():
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override {dotted!r} must look like section.key=value")
        raw.setdefault(section, {})[key] = value
    if not isinstance(raw.get("run"), dict):
        raise ConfigError('config has no [run] section; it needs at least [run] kind = "..."')
    run = build_section("run", RunSection, raw.pop("run"))
    kind = experiment_kind(run.kind)
    unknown = sorted(set(raw) - set(kind.sections))
    if unknown:
        raise ConfigError(
            f"unknown section(s) {unknown} for kind {run.kind!r}; allowed: {['run', *sorted(kind.sections)]}"
        )
    sections = {name: build_section(name, cls, raw.get(name, {})) for name, cls in kind.sections.items()}
    return ExperimentConfig(run=run, sections=sections)


def build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, checking keys, types and ``validate()``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{name}] must be a table of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{name}.{k}' for k in unknown]}; [{name}] allows: {names}")
    kwargs = {key: _coerce(value, hints[key], f"{name}.{key}") for key, value in values.items()}
    section = cls(**kwargs)
    validate = getattr(section, "validate", None)
    if validate is not None:
        validate()
    return section


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} = {value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key} = {value!r} matches none of the allowed types: {'; '.join(errors)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key} must have {len(args)} items, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table of keys, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _section_to_dict(section: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def parse_overrides(overrides: Mapping[str, Any] | list[str] | None) -> dict[str, Any]:
    """``{"a.b": value}`` from a mapping or from CLI-style ``["a.b=value"]`` (values parsed as TOML)."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        parsed[key.strip()] = parse_value(text.strip())
    return parsed


def parse_value(text: str) -> Any:
    """A CLI value as TOML (numbers, booleans, lists, quoted strings), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
