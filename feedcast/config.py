"""``feedcast apply FILE.yaml`` and ``feedcast export``: the whole set-up as one file.

A file lists ``sources``, ``channels`` (secrets as ``env:VAR``), ``subscribers``
(imports from a CSV file beside the YAML, or inline recipients), ``automations`` and
``public_audiences`` (the tags people may subscribe themselves to: subscribe pages, bot
deep links); ``${VAR}`` in a value is taken from the environment.
Applying is idempotent: what exists and matches is left alone, what differs is
changed, what is missing is created; ``prune`` removes sources, channels and
automations the file no longer lists. Everything is checked before anything is done,
and every error names the file, the entry and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_type_hints

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from channels import channel_class
from feedcast.automations import EVENTS, AutomationSpec, add_automation, edit_automation, spec_of
from feedcast.delivery import make_channel
from feedcast.kernel.durations import human_duration, parse_duration
from feedcast.kernel.errors import InvalidValue, UserError
from feedcast.kernel.models import Automation, ChannelConfig, NewSubscriber, Source
from feedcast.schedule import parse_schedule
from feedcast.store import AUDIENCE_TAG, Store, validate_where
from layouts.render import RenderContext, load_layout, search_path_from_env

__all__ = ["ApplyPlan", "ConfigFile", "apply_config", "export_config", "load_config", "plan_config"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _as_strings(value: Any) -> Any:
    return [str(v) for v in value] if isinstance(value, list) else value


# a list of strings in which YAML may have written numbers (chat ids, tags)
_Strings = Annotated[list[str], BeforeValidator(_as_strings)]


class SourceEntry(_Model):
    name: str
    url: str
    kind: Literal["auto", "feed", "page", "catalogue"] = "auto"
    every: str = "15m"
    backfill: int = Field(0, ge=0)
    selectors: dict[str, str] | None = None


class ChannelEntry(_Model):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)  # the kind's own options
    name: str
    kind: str

    def options(self) -> dict[str, str]:
        extra = self.model_extra or {}
        return {("from_addr" if k == "from" else k): str(v) for k, v in extra.items() if v is not None}


class SubscriberEntry(_Model):
    channel: str
    file: str | None = None
    recipients: _Strings = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


def _pydantic_fields(spec: type[Any]) -> dict[str, Any]:
    """A dataclass's fields as pydantic field definitions: ``name=(type, default)``."""
    hints = get_type_hints(spec)
    definitions: dict[str, Any] = {}
    for f in fields(spec):
        if f.default_factory is not MISSING:
            default: Any = Field(default_factory=f.default_factory)
        else:
            default = ... if f.default is MISSING else f.default
        definitions[f.name] = (hints[f.name], default)
    return definitions


class _NamedAutomation(_Model):
    name: str

    def spec(self) -> AutomationSpec:
        return AutomationSpec(**self.model_dump(exclude={"name"}))


# an automation in the file: its name, then AutomationSpec's fields with their types and
# defaults (mypy sees the name and spec(); everything else is read through the spec)
if TYPE_CHECKING:
    AutomationEntry = _NamedAutomation
else:
    AutomationEntry = create_model(
        "AutomationEntry", __base__=_NamedAutomation, __module__=__name__, **_pydantic_fields(AutomationSpec)
    )


class ConfigFile(_Model):
    sources: list[SourceEntry] = Field(default_factory=list)
    channels: list[ChannelEntry] = Field(default_factory=list)
    subscribers: list[SubscriberEntry] = Field(default_factory=list)
    automations: list[AutomationEntry] = Field(default_factory=list)
    public_audiences: _Strings = Field(default_factory=list)


@contextmanager
def _at(where: str) -> Iterator[None]:
    """A UserError inside becomes an InvalidValue naming the file and the entry."""
    try:
        yield
    except UserError as exc:
        raise InvalidValue(f"{where}: {exc}") from None


_E = TypeVar("_E", bound=BaseModel)  # an entry of the file
_Named = TypeVar("_Named", SourceEntry, ChannelEntry)  # an entry named like a store row


def _entries(path: Path, section: str, entries: Sequence[_E]) -> Iterator[tuple[str, _E]]:
    """The entries of a section, each with where it is: ``FILE: section[i] (name)``."""
    for index, entry in enumerate(entries):
        name = getattr(entry, "name", None) or getattr(entry, "channel", None)
        yield f"{path}: {section}[{index}]" + (f" ({name})" if name else ""), entry


def _named_entries(path: Path, section: str, entries: Sequence[_Named]) -> Iterator[tuple[str, _Named]]:
    """:func:`_entries` of a section whose entries are named (sources, channels): each
    name checked as ``feedcast ... add`` checks it."""
    from feedcast.watch import validate_name

    for where, entry in _entries(path, section, entries):
        with _at(where):
            validate_name(entry.name)
        yield where, entry


def load_config(path: Path) -> ConfigFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InvalidValue(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    data = _expand(data, str(path))
    if not isinstance(data, dict):
        raise InvalidValue(
            f"{path}: the top level must be a mapping with sources, channels, subscribers, automations"
        )
    try:
        config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc: list[Any] = list(error["loc"])
        where = str(path)
        if loc and isinstance(loc[0], str):
            section = str(loc.pop(0))
            where += f": {section}"
            first: Any = loc[0] if loc else None
            if isinstance(first, int):
                index = int(loc.pop(0))
                entries = data.get(section) or []
                name = (
                    entries[index].get("name")
                    if index < len(entries) and isinstance(entries[index], dict)
                    else None
                )
                where += f"[{index}]" + (f" ({name})" if name else "")
        field_name = ".".join(str(part) for part in loc)
        message = error["msg"].replace("Extra inputs are not permitted", "unknown field")
        raise InvalidValue(
            f"{where}: {'field ' + repr(field_name) + ': ' if field_name else ''}{message}"
        ) from None
    for section in ("sources", "channels", "automations"):
        seen: set[str] = set()
        for index, entry in enumerate(getattr(config, section)):
            if entry.name in seen:
                raise InvalidValue(f"{path}: {section}[{index}] ({entry.name}): the name is used twice")
            seen.add(entry.name)
    return config


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, where: str) -> Any:
    """``${VAR}`` in string values comes from the environment (URLs that differ between
    machines). Secrets are not expanded this way: they stay ``env:VAR`` references."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}: {k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise InvalidValue(f"{where}: ${{{name}}} is not set in the environment")
            return os.environ[name]

        return _VAR.sub(one, value)
    return value


# one change of a plan: run with the store and ``fetch`` (take a new source's baseline),
# it returns the note it makes, if any
Action = Callable[[Store, bool], str | None]


@dataclass
class ApplyPlan:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # in the store, not in the file (no prune)
    actions: list[Action] = field(default_factory=list, repr=False)  # run by apply_config, in order

    @property
    def empty(self) -> bool:
        return not (self.created or self.changed or self.removed)


@dataclass(frozen=True, slots=True)
class _Known:
    """What the store holds, by name, and the names the file declares."""

    sources: dict[str, Source]
    channels: dict[str, ChannelConfig]
    automations: dict[str, Automation]
    file_sources: set[str]
    file_channels: set[str]

    @classmethod
    def of(cls, store: Store, config: ConfigFile) -> _Known:
        return cls(
            sources={s.name: s for s in store.list_sources()},
            channels={c.name: c for c in store.list_channels()},
            automations={a.name: a for a in store.list_automations()},
            file_sources={s.name for s in config.sources},
            file_channels={c.name for c in config.channels},
        )

    def check_channel(self, name: str, where: str) -> None:
        if name not in self.file_channels and name not in self.channels:
            raise InvalidValue(
                f"{where}: field 'channel': no channel named {name!r} in the file or the store"
            )


def plan_config(store: Store, config: ConfigFile, path: Path, *, prune: bool = False) -> ApplyPlan:
    """Check every entry and work out what applying would do (nothing is changed)."""
    plan = ApplyPlan()
    known = _Known.of(store, config)
    _plan_sources(plan, config, path, known)
    _plan_channels(plan, config, path, known)
    _plan_subscribers(plan, config, path, known)
    _plan_automations(plan, store, config, path, known)
    _plan_audiences(plan, store, config, path, prune=prune)
    _plan_removals(plan, config, known, prune=prune)
    return plan


def _plan_sources(plan: ApplyPlan, config: ConfigFile, path: Path, known: _Known) -> None:
    from feedcast.watch import validate_url

    for where, entry in _named_entries(path, "sources", config.sources):
        with _at(where):
            url = validate_url(entry.url)
            every = parse_duration(entry.every, minimum=timedelta(minutes=1))
        current = known.sources.get(entry.name)
        if current is None:
            plan.created.append(f"source {entry.name}")
            plan.actions.append(partial(_add_source, entry=entry, every=every))
            continue
        changes = _source_changes(entry, current, url=url, every=every)
        if changes:
            plan.changed.append(
                f"source {entry.name} ({', '.join(k for k in changes if k != 'clear_selectors')})"
            )
            plan.actions.append(partial(_update_source, name=entry.name, changes=changes))
        else:
            plan.unchanged.append(f"source {entry.name}")


def _source_changes(entry: SourceEntry, current: Source, *, url: str, every: timedelta) -> dict[str, Any]:
    """What ``store.update_source`` must change for the source to match its entry."""
    changes: dict[str, Any] = {}
    if url != current.added_url:
        changes["url"] = url
    if entry.kind != "auto" and entry.kind != current.kind:
        changes["kind"] = entry.kind
    if every != current.every:
        changes["every"] = every
    if entry.backfill != current.backfill:
        changes["backfill"] = entry.backfill
    if (entry.selectors or None) != (dict(current.selectors) if current.selectors else None):
        changes["selectors"] = entry.selectors
        changes["clear_selectors"] = not entry.selectors
    return changes


def _plan_channels(plan: ApplyPlan, config: ConfigFile, path: Path, known: _Known) -> None:
    for where, channel in _named_entries(path, "channels", config.channels):
        with _at(where):
            cls = channel_class(channel.kind)
            settings = cls.validate_settings(channel.options())
        existing = known.channels.get(channel.name)
        if existing is None:
            plan.created.append(f"channel {channel.name} ({channel.kind})")
            plan.actions.append(
                partial(
                    _add_channel,
                    name=channel.name,
                    kind=channel.kind,
                    settings=settings,
                    fixed=cls.fixed_recipient,
                )
            )
        elif existing.kind != channel.kind:
            raise InvalidValue(
                f"{where}: field 'kind': a channel cannot change kind ({existing.kind} -> {channel.kind}); remove it first"
            )
        elif dict(existing.settings) != settings:
            keys = sorted(
                k
                for k in set(settings) | set(existing.settings)
                if settings.get(k) != existing.settings.get(k)
            )
            plan.changed.append(f"channel {channel.name} ({', '.join(keys)})")
            plan.actions.append(partial(_update_channel, name=channel.name, settings=settings))
        else:
            plan.unchanged.append(f"channel {channel.name}")


def _plan_subscribers(plan: ApplyPlan, config: ConfigFile, path: Path, known: _Known) -> None:
    for where, sub in _entries(path, "subscribers", config.subscribers):
        known.check_channel(sub.channel, where)
        if not sub.file and not sub.recipients:
            raise InvalidValue(f"{where}: give a 'file' (CSV beside the YAML) or 'recipients'")
        csv_path = (path.parent / sub.file) if sub.file else None
        if csv_path is not None and not csv_path.is_file():
            raise InvalidValue(f"{where}: field 'file': {csv_path} is not a file")
        what = f"{len(sub.recipients)} recipient(s)" if sub.recipients else f"{sub.file}"
        plan.actions.append(partial(_add_subscribers, sub=sub, csv_path=csv_path))
        plan.unchanged.append(f"subscribers of {sub.channel} from {what} (merged)")


def _plan_automations(plan: ApplyPlan, store: Store, config: ConfigFile, path: Path, known: _Known) -> None:
    for where, auto in _entries(path, "automations", config.automations):
        spec = auto.spec()
        for name in spec.sources:
            if name not in known.file_sources and name not in known.sources:
                raise InvalidValue(
                    f"{where}: field 'sources': no source named {name!r} in the file or the store"
                )
        known.check_channel(spec.channel, where)
        _check_spec(store, spec, where, config=config, pending_channel=spec.channel not in known.channels)
        existing = known.automations.get(auto.name)
        if existing is None:
            plan.created.append(f"automation {auto.name}")
            plan.actions.append(partial(_add_automation, name=auto.name, spec=spec, where=where))
            continue
        current = spec_of(existing)
        differing = [
            k for k in AutomationSpec.__dataclass_fields__ if getattr(current, k) != getattr(spec, k)
        ]
        if differing:
            plan.changed.append(f"automation {auto.name} ({', '.join(differing)})")
            changes = {k: getattr(spec, k) for k in differing}
            plan.actions.append(partial(_edit_automation, name=auto.name, changes=changes, where=where))
        else:
            plan.unchanged.append(f"automation {auto.name}")


def _plan_audiences(plan: ApplyPlan, store: Store, config: ConfigFile, path: Path, *, prune: bool) -> None:

    declared = set(store.public_audiences())
    for index, tag in enumerate(config.public_audiences):
        if not AUDIENCE_TAG.fullmatch(tag):
            raise InvalidValue(
                f"{path}: public_audiences[{index}]: {tag!r} is not an audience tag"
                " (letters, digits, _ - . : and up to 64 characters)"
            )
    opened = sorted(set(config.public_audiences) - declared)
    if opened:
        plan.created += [f"public audience {tag}" for tag in opened]
        plan.actions.append(partial(_set_public, tags=opened, public=True))
    for tag in sorted(declared & set(config.public_audiences)):
        plan.unchanged.append(f"public audience {tag}")
    closed = sorted(declared - set(config.public_audiences))
    if closed and prune:
        plan.removed += [f"public audience {tag}" for tag in closed]
        plan.actions.append(partial(_set_public, tags=closed, public=False))
    elif closed:
        plan.kept += [f"public audience {tag}" for tag in closed]


def _plan_removals(plan: ApplyPlan, config: ConfigFile, known: _Known, *, prune: bool) -> None:
    """What the store holds and the file no longer lists: removed with ``prune``, else kept."""
    file_automations = {a.name for a in config.automations}
    for kind, store_names, file_names in (
        ("automation", set(known.automations), file_automations),
        ("channel", set(known.channels), known.file_channels),
        ("source", set(known.sources), known.file_sources),
    ):
        for name in sorted(store_names - file_names):
            if prune:
                plan.removed.append(f"{kind} {name}")
                plan.actions.append(partial(_remove, kind=kind, name=name))
            else:
                plan.kept.append(f"{kind} {name}")


def _check_spec(
    store: Store, spec: AutomationSpec, where: str, *, config: ConfigFile, pending_channel: bool
) -> None:
    """What can be checked before the channel and sources exist: schedule, time zone,
    events, --where, the layout against the channel kind's format."""

    with _at(where):
        every = parse_duration(spec.every, minimum=timedelta(minutes=1)) if spec.every else None
        parse_schedule(cron=spec.schedule, every=every, on_new=spec.on_new, timezone=spec.timezone)
        RenderContext(timezone=spec.timezone, locale=spec.locale)
        if any(e not in EVENTS for e in spec.events) or not spec.events:
            raise InvalidValue(f"field 'events': use {', '.join(EVENTS)}")
        if spec.where:
            validate_where(spec.where)
        layout = load_layout(spec.layout, search_path_from_env())
        if pending_channel:
            entry = next(c for c in config.channels if c.name == spec.channel)
            fmt = channel_class(entry.kind)(
                "check", channel_class(entry.kind).validate_settings(entry.options())
            ).format
        else:
            fmt = make_channel(store.get_channel(spec.channel)).format
        layout.require(fmt)


def apply_config(store: Store, plan: ApplyPlan, *, fetch: bool = True) -> list[str]:
    """Carry out a plan; returns notes (subscriber import counts, baseline results)."""
    notes = [action(store, fetch) for action in plan.actions]
    return [note for note in notes if note is not None]


# --------------------------------------------------------------------------- the actions of a plan


def _add_source(store: Store, fetch: bool, *, entry: SourceEntry, every: timedelta) -> str | None:
    from feedcast import watch

    source, summary = watch.add_source(
        store,
        entry.name,
        entry.url,
        kind=entry.kind,
        every=every,
        backfill=entry.backfill,
        selectors=entry.selectors,
        fetch=fetch,
    )
    if summary is None:
        return None
    return f"source {source.name}: baseline {summary.outcome}, {summary.items or 0} items"


def _update_source(store: Store, fetch: bool, *, name: str, changes: dict[str, Any]) -> None:
    store.update_source(name, **changes)


def _add_channel(
    store: Store, fetch: bool, *, name: str, kind: str, settings: dict[str, Any], fixed: str | None
) -> None:
    store.add_channel(name, kind, settings, fixed_recipient=fixed)


def _update_channel(store: Store, fetch: bool, *, name: str, settings: dict[str, Any]) -> None:
    store.update_channel(name, settings)


def _add_subscribers(store: Store, fetch: bool, *, sub: SubscriberEntry, csv_path: Path | None) -> str:
    from feedcast.audience import read_subscribers_csv

    channel = make_channel(store.get_channel(sub.channel))
    news: dict[str, NewSubscriber] = {}
    problems: list[str] = []
    if csv_path is not None:
        rows, bad = read_subscribers_csv(csv_path, channel, tuple(sub.tags))
        news.update({r.recipient: r for r in rows})
        problems += bad
    for raw in sub.recipients:
        try:
            address = channel.validate_recipient(raw)
        except UserError as exc:
            problems.append(f"{raw!r}: {exc}")
            continue
        news[address] = NewSubscriber(address, tuple(sub.tags))
    counts = store.add_subscribers(sub.channel, list(news.values()), source="import") if news else {}
    return (
        f"subscribers of {sub.channel}: {counts.get('added', 0)} added, {counts.get('updated', 0)} updated"
        + (f", {len(problems)} skipped ({problems[0]})" if problems else "")
    )


def _add_automation(store: Store, fetch: bool, *, name: str, spec: AutomationSpec, where: str) -> None:
    with _at(where):
        add_automation(store, name, spec)


def _edit_automation(store: Store, fetch: bool, *, name: str, changes: dict[str, Any], where: str) -> None:
    with _at(where):
        edit_automation(store, name, changes)


def _set_public(store: Store, fetch: bool, *, tags: list[str], public: bool) -> None:
    store.set_audiences_public(tags, public)


def _remove(store: Store, fetch: bool, *, kind: str, name: str) -> None:
    if kind == "automation":
        store.remove_automation(name)
    elif kind == "channel":
        store.remove_channel(name)
    else:
        store.remove_source(name)


def export_config(store: Store, notes: list[str] | None = None) -> str:
    """The current set-up as an apply-able YAML document (subscribers are data: listed
    with `feedcast subscriber list`, not exported). A secret an older feedcast stored in
    clear is written as an ``env:VAR`` to set; ``notes`` receives a line for each."""

    data: dict[str, Any] = {"sources": [], "channels": [], "automations": []}
    for s in store.list_sources():
        entry: dict[str, Any] = {"name": s.name, "url": s.added_url or s.url}
        if s.kind:
            entry["kind"] = s.kind
        entry["every"] = human_duration(s.every)
        if s.backfill:
            entry["backfill"] = s.backfill
        if s.selectors:
            entry["selectors"] = dict(s.selectors)
        data["sources"].append(entry)
    notes = [] if notes is None else notes
    for c in store.list_channels():
        settings, left_out = channel_class(c.kind).exported_settings(c.name, c.settings)
        notes.extend(left_out)
        data["channels"].append(
            {
                "name": c.name,
                "kind": c.kind,
                **{("from" if k == "from_addr" else k): v for k, v in settings.items()},
            }
        )
    defaults = AutomationSpec(sources=[], layout="", channel="")
    for a in store.list_automations():
        spec = spec_of(a)
        entry = {"name": a.name, "sources": spec.sources, "layout": spec.layout, "channel": spec.channel}
        for key in AutomationSpec.__dataclass_fields__:
            value = getattr(spec, key)
            if key not in entry and value != getattr(defaults, key):
                entry[key] = value
        data["automations"].append(entry)
    public = store.public_audiences()
    if public:
        data["public_audiences"] = public
    header = "# feedcast configuration (feedcast export); apply with: feedcast apply FILE.yaml\n"
    header += "".join(f"# {note}\n" for note in notes)
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
