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
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from feedcast.automations import AutomationSpec, add_automation, edit_automation, spec_of
from feedcast.kernel.errors import InvalidValue, UserError
from feedcast.kernel.models import NewSubscriber
from feedcast.store import Store

__all__ = ["ApplyPlan", "ConfigFile", "apply_config", "export_config", "load_config", "plan_config"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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
    recipients: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @field_validator("recipients", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


class AutomationEntry(_Model):
    name: str
    sources: list[str]
    layout: str
    channel: str
    audience: str | None = None
    schedule: str | None = None
    every: str | None = None
    on_new: bool = False
    timezone: str = "UTC"
    locale: str = "en"
    max_items: int | None = None
    min_items: int = 1
    where: str | None = None
    events: list[str] = Field(default_factory=lambda: ["new"])
    backfill: int = 0
    message_tag: str | None = None
    track_clicks: bool = False
    status: Literal["active", "paused"] = "active"

    def spec(self) -> AutomationSpec:
        data = self.model_dump(exclude={"name"})
        return AutomationSpec(**data)


class ConfigFile(_Model):
    sources: list[SourceEntry] = Field(default_factory=list)
    channels: list[ChannelEntry] = Field(default_factory=list)
    subscribers: list[SubscriberEntry] = Field(default_factory=list)
    automations: list[AutomationEntry] = Field(default_factory=list)
    public_audiences: list[str] = Field(default_factory=list)

    @field_validator("public_audiences", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


def _where(path: Path, section: str, index: int, entry: Any) -> str:
    name = getattr(entry, "name", None) or getattr(entry, "channel", None)
    return f"{path}: {section}[{index}]" + (f" ({name})" if name else "")


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


@dataclass
class ApplyPlan:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # in the store, not in the file (no prune)
    actions: list[Any] = field(default_factory=list, repr=False)

    @property
    def empty(self) -> bool:
        return not (self.created or self.changed or self.removed)


def plan_config(store: Store, config: ConfigFile, path: Path, *, prune: bool = False) -> ApplyPlan:
    """Check every entry and work out what applying would do (nothing is changed)."""
    from channels import channel_class
    from feedcast.kernel.durations import parse_duration
    from feedcast.watch import validate_name, validate_url

    plan = ApplyPlan()
    sources = {s.name: s for s in store.list_sources()}
    channels = {c.name: c for c in store.list_channels()}
    automations = {a.name: a for a in store.list_automations()}
    file_sources = {s.name for s in config.sources}
    file_channels = {c.name for c in config.channels}

    for index, entry in enumerate(config.sources):
        where = _where(path, "sources", index, entry)
        try:
            validate_name(entry.name)
            url = validate_url(entry.url)
            every = parse_duration(entry.every, minimum=timedelta(minutes=1))
        except UserError as exc:
            raise InvalidValue(f"{where}: {exc}") from None
        current = sources.get(entry.name)
        if current is None:
            plan.created.append(f"source {entry.name}")
            plan.actions.append(("add_source", entry, every))
            continue
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
        if changes:
            plan.changed.append(
                f"source {entry.name} ({', '.join(k for k in changes if k != 'clear_selectors')})"
            )
            plan.actions.append(("update_source", entry.name, changes))
        else:
            plan.unchanged.append(f"source {entry.name}")

    for index, channel in enumerate(config.channels):
        where = _where(path, "channels", index, channel)
        try:
            validate_name(channel.name)
            cls = channel_class(channel.kind)
            settings = cls.validate_settings(channel.options())
        except UserError as exc:
            raise InvalidValue(f"{where}: {exc}") from None
        existing = channels.get(channel.name)
        if existing is None:
            plan.created.append(f"channel {channel.name} ({channel.kind})")
            plan.actions.append(("add_channel", channel.name, channel.kind, settings, cls.fixed_recipient))
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
            plan.actions.append(("update_channel", channel.name, settings))
        else:
            plan.unchanged.append(f"channel {channel.name}")

    for index, sub in enumerate(config.subscribers):
        where = _where(path, "subscribers", index, sub)
        if sub.channel not in file_channels and sub.channel not in channels:
            raise InvalidValue(
                f"{where}: field 'channel': no channel named {sub.channel!r} in the file or the store"
            )
        if not sub.file and not sub.recipients:
            raise InvalidValue(f"{where}: give a 'file' (CSV beside the YAML) or 'recipients'")
        csv_path = (path.parent / sub.file) if sub.file else None
        if csv_path is not None and not csv_path.is_file():
            raise InvalidValue(f"{where}: field 'file': {csv_path} is not a file")
        what = f"{len(sub.recipients)} recipient(s)" if sub.recipients else f"{sub.file}"
        plan.actions.append(("subscribers", sub, csv_path, where))
        plan.unchanged.append(f"subscribers of {sub.channel} from {what} (merged)")

    for index, auto in enumerate(config.automations):
        where = _where(path, "automations", index, auto)
        for name in auto.sources:
            if name not in file_sources and name not in sources:
                raise InvalidValue(
                    f"{where}: field 'sources': no source named {name!r} in the file or the store"
                )
        if auto.channel not in file_channels and auto.channel not in channels:
            raise InvalidValue(
                f"{where}: field 'channel': no channel named {auto.channel!r} in the file or the store"
            )
        spec = auto.spec()
        _check_spec(
            store,
            spec,
            where,
            pending_channel=auto.channel not in channels,
            pending_sources=any(n not in sources for n in auto.sources),
            config=config,
        )
        existing_auto = automations.get(auto.name)
        if existing_auto is None:
            plan.created.append(f"automation {auto.name}")
            plan.actions.append(("add_automation", auto.name, spec, where))
            continue
        current_spec = spec_of(existing_auto)
        differing = [
            k for k in AutomationSpec.__dataclass_fields__ if getattr(current_spec, k) != getattr(spec, k)
        ]
        if differing:
            plan.changed.append(f"automation {auto.name} ({', '.join(differing)})")
            plan.actions.append(
                ("edit_automation", auto.name, {k: getattr(spec, k) for k in differing}, where)
            )
        else:
            plan.unchanged.append(f"automation {auto.name}")

    from feedcast.store import AUDIENCE_TAG

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
        plan.actions.append(("audiences", opened, True))
    for tag in sorted(declared & set(config.public_audiences)):
        plan.unchanged.append(f"public audience {tag}")
    closed = sorted(declared - set(config.public_audiences))
    if closed and prune:
        plan.removed += [f"public audience {tag}" for tag in closed]
        plan.actions.append(("audiences", closed, False))
    elif closed:
        plan.kept += [f"public audience {tag}" for tag in closed]

    file_automations = {a.name for a in config.automations}
    for kind, store_names, file_names in (
        ("automation", automations, file_automations),
        ("channel", channels, file_channels),
        ("source", sources, file_sources),
    ):
        for name in sorted(set(store_names) - file_names):
            if prune:
                plan.removed.append(f"{kind} {name}")
                plan.actions.append(("remove", kind, name))
            else:
                plan.kept.append(f"{kind} {name}")
    return plan


def _check_spec(
    store: Store,
    spec: AutomationSpec,
    where: str,
    *,
    pending_channel: bool,
    pending_sources: bool,
    config: ConfigFile,
) -> None:
    """What can be checked before the channel and sources exist: schedule, time zone,
    events, --where, the layout against the channel kind's format."""
    from channels import channel_class
    from feedcast.automations import EVENTS
    from feedcast.kernel.durations import parse_duration
    from feedcast.schedule import parse_schedule
    from feedcast.store import validate_where
    from layouts.render import RenderContext, load_layout, search_path_from_env

    try:
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
            from feedcast.delivery import make_channel

            fmt = make_channel(store.get_channel(spec.channel)).format
        layout.require(fmt)
    except UserError as exc:
        raise InvalidValue(f"{where}: {exc}") from None
    _ = pending_sources


def apply_config(store: Store, plan: ApplyPlan, *, fetch: bool = True) -> list[str]:
    """Carry out a plan; returns notes (subscriber import counts, baseline results)."""
    from feedcast import watch
    from feedcast.audience import read_subscribers_csv

    notes: list[str] = []
    for action in plan.actions:
        kind = action[0]
        if kind == "add_source":
            _, entry, every = action
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
            if summary is not None:
                notes.append(f"source {source.name}: baseline {summary.outcome}, {summary.items or 0} items")
        elif kind == "update_source":
            _, name, changes = action
            store.update_source(name, **changes)
        elif kind == "add_channel":
            _, name, channel_kind, settings, fixed = action
            store.add_channel(name, channel_kind, settings, fixed_recipient=fixed)
        elif kind == "update_channel":
            store.update_channel(action[1], action[2])
        elif kind == "subscribers":
            _, sub, csv_path, where = action
            from feedcast.delivery import make_channel

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
            notes.append(
                f"subscribers of {sub.channel}: {counts.get('added', 0)} added, {counts.get('updated', 0)} updated"
                + (f", {len(problems)} skipped ({problems[0]})" if problems else "")
            )
        elif kind == "add_automation":
            _, name, spec, where = action
            try:
                add_automation(store, name, spec)
            except UserError as exc:
                raise InvalidValue(f"{where}: {exc}") from None
        elif kind == "edit_automation":
            _, name, changes, where = action
            try:
                edit_automation(store, name, changes)
            except UserError as exc:
                raise InvalidValue(f"{where}: {exc}") from None
        elif kind == "audiences":
            store.set_audiences_public(action[1], action[2])
        elif kind == "remove":
            _, what, name = action
            if what == "automation":
                store.remove_automation(name)
            elif what == "channel":
                store.remove_channel(name)
            else:
                store.remove_source(name)
    return notes


def export_config(store: Store, notes: list[str] | None = None) -> str:
    """The current set-up as an apply-able YAML document (subscribers are data: listed
    with `feedcast subscriber list`, not exported). A secret an older feedcast stored in
    clear is written as an ``env:VAR`` to set; ``notes`` receives a line for each."""
    from channels import channel_class
    from feedcast.kernel.durations import human_duration

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
