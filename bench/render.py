#!/usr/bin/env python
"""Rendering benchmark: items rendered per second, per built-in layout and channel format.

    .venv/bin/python bench/render.py                 # full run (about 2 minutes)
    .venv/bin/python bench/render.py --quick         # smoke test (< 20 s)
    .venv/bin/python bench/render.py --no-readme     # full run, bench/README.md untouched

Items: every item ``sources.detect.parse_document`` finds in the corpus files
tests/data/corpus/{feeds,catalogues}/* (``--quick``: the first 8 of each file). Each
(layout, format) pass renders all of them, one file at a time, in batches of the
layout's ``max_items`` (the items of one source, as an automation would send them):
a per-item layout (single, product) gives one Message per item, a campaign layout
(digest, carousel, plain) one Message per batch. Three nested measurements per pass:

(1) render          ``layouts.render.render(layout, fmt, batch, context=...)``
(2) + payloads      ... and ``layouts.formats.provider_calls(message)`` for each Message
(3) + validate      ... and ``layouts.formats.validate_call(fmt, call)`` for each call

Baseline, in the same run and on the same items: a bare ``jinja2.Environment()``
rendering ``{{ title }}\\n{{ summary }}`` per item (and, for scale, the same template
in a bare ``ImmutableSandboxedEnvironment(autoescape=True)``). The ratio
baseline items/s / feedcast items/s is what sanitising, limits, the sandbox and the
module machinery cost per item.

Median of ``--repeat`` repetitions (3; ``--quick`` 1), passes interleaved (every
measurement once, then again). A full run also profiles one extra pass of (3) over
every layout and format with cProfile, writes everything to
bench/results/render-<date>.json (gitignored; the profile next to it) and appends an
entry to the "bench/render.py" section of bench/README.md. Exits 1 when a render,
payload or validation raised (the error is recorded, the pass goes on).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jinja2  # noqa: E402
from _machine import append_readme as _append_readme  # noqa: E402
from _machine import machine  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from feedcast.kernel.models import Item  # noqa: E402
from layouts.formats import FORMATS, provider_calls, validate_call  # noqa: E402
from layouts.render import Layout, RenderContext, item_view, load_layout, render  # noqa: E402
from sources.detect import parse_document  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus"
KINDS = ("feeds", "catalogues")
LAYOUTS = ("single", "digest", "carousel", "product", "plain")
MODES = ("render", "payloads", "validate")
MODE_LABELS = {
    "render": "(1) render",
    "payloads": "(2) + provider_calls",
    "validate": "(3) + validate_call",
}
BASELINE_TEMPLATE = "{{ title }}\n{{ summary }}"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # fixed: `now` is a template variable
CONTEXT = RenderContext(site_title="Example Store", automation="bench", now=NOW)
QUICK_ITEMS_PER_FILE = 8
README_SECTION = "## bench/render.py"
BASE = "jinja2.Environment"  # the baseline the ratios divide by
ITEM_VIEW = "item_view"  # reference: feedcast's per-item view alone, no template
REFERENCE_LABELS = {
    BASE: "bare `jinja2.Environment()`, `{{ title }}\\n{{ summary }}` per item (the baseline)",
    "ImmutableSandboxedEnvironment(autoescape=True)": "the same in a bare "
    "`ImmutableSandboxedEnvironment(autoescape=True)`",
    ITEM_VIEW: "feedcast's `item_view(item, context)` alone (done once per item by every render; no template)",
}


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class CorpusFile:
    kind: str
    name: str
    items: tuple[Item, ...]


def load_corpus(per_file: int | None) -> list[CorpusFile]:
    """Every feed and catalogue of the corpus, parsed as the tests parse them."""
    files = []
    for kind in KINDS:
        for path in sorted((CORPUS / kind).iterdir()):
            if not path.is_file():
                continue
            result = parse_document(path.read_bytes(), f"https://example.com/{path.name}")
            items = tuple(result.items[:per_file] if per_file else result.items)
            if items:
                files.append(CorpusFile(kind, path.name, items))
    return files


def batches(files: Sequence[CorpusFile], size: int) -> list[tuple[Item, ...]]:
    """The items of each file in runs of ``size`` (a layout's max_items)."""
    return [f.items[i : i + size] for f in files for i in range(0, len(f.items), size)]


# --------------------------------------------------------------------------- passes


@dataclass
class Counts:
    items: int = 0
    messages: int = 0
    calls: int = 0
    errors: int = 0


def run_pass(
    layout: Layout, fmt: str, runs: Sequence[tuple[Item, ...]], mode: str, errors: list[str]
) -> Counts:
    """Render every batch (and build / validate its provider calls, per ``mode``)."""
    counts = Counts()
    payloads = mode != "render"
    check = mode == "validate"
    for batch in runs:
        counts.items += len(batch)
        try:
            messages = render(layout, fmt, batch, context=CONTEXT)
            counts.messages += len(messages)
            if payloads:
                for message in messages:
                    calls = provider_calls(message)
                    counts.calls += len(calls)
                    if check:
                        for call in calls:
                            validate_call(fmt, call)
        except Exception as exc:  # recorded and reported; the benchmark goes on
            counts.errors += 1
            if len(errors) < 50:
                keys = ", ".join(item.key for item in batch)[:200]
                errors.append(f"{layout.name}/{fmt}/{mode}: {type(exc).__name__}: {exc} [items {keys}]")
    return counts


def baseline_renderers() -> dict[str, Callable[[Sequence[Item]], int]]:
    bare = jinja2.Environment().from_string(BASELINE_TEMPLATE)
    sandbox = ImmutableSandboxedEnvironment(autoescape=True).from_string(BASELINE_TEMPLATE)

    def make(template: jinja2.Template) -> Callable[[Sequence[Item]], int]:
        def run(items: Sequence[Item]) -> int:
            size = 0
            for item in items:
                size += len(template.render(title=item.title, summary=item.summary))
            return size

        return run

    def views(items: Sequence[Item]) -> int:
        return len([item_view(item, CONTEXT) for item in items])

    return {
        BASE: make(bare),
        "ImmutableSandboxedEnvironment(autoescape=True)": make(sandbox),
        ITEM_VIEW: views,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of ``fn()`` (after a full collection, gc left on)."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - w0, time.process_time() - c0, value


# --------------------------------------------------------------------------- profile


def profile_pass(
    layouts: dict[str, Layout], files: Sequence[CorpusFile], out: Path
) -> tuple[dict[str, Any], str]:
    """cProfile of one pass of (3) over every layout and format; summary and text report."""
    plan = [(layout, fmt, batches(files, layout.max_items)) for layout in layouts.values() for fmt in FORMATS]
    errors: list[str] = []
    profiler = cProfile.Profile()
    gc.collect()
    w0 = time.perf_counter()
    profiler.enable()
    for layout, fmt, runs in plan:
        run_pass(layout, fmt, runs, "validate", errors)
    profiler.disable()
    wall = time.perf_counter() - w0
    profiler.dump_stats(str(out.with_suffix(".prof")))
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]

    def label(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        if filename == "~":
            return func
        for prefix in (str(ROOT) + "/", *(p + "/" for p in sorted(sys.path, key=len, reverse=True) if p)):
            if filename.startswith(prefix):
                filename = filename[len(prefix) :]
                break
        return f"{filename}:{line}({func})"

    def rows(sort: int, count: int, skip_bench: bool) -> list[dict[str, Any]]:
        ordered = sorted(raw.items(), key=lambda kv: kv[1][sort], reverse=True)
        picked = []
        for key, (cc, nc, tt, ct, _callers) in ordered:
            if skip_bench and (key[0] == __file__ or key[2] == "<built-in method builtins.exec>"):
                continue
            if "_lsprof" in key[0] or key[2] == "<method 'disable' of '_lsprof.Profiler' objects>":
                continue
            calls = str(nc) if nc == cc else f"{nc}/{cc}"
            picked.append({"function": label(key), "ncalls": calls, "tottime": tt, "cumtime": ct})
            if len(picked) == count:
                break
        return picked

    def cumulative(filename_end: str, func: str) -> float:
        return sum(v[3] for k, v in raw.items() if k[0].endswith(filename_end) and k[2] == func)

    phases = [
        ("render (layouts.render.render)", cumulative("layouts/render.py", "render")),
        ("  item_view (Item -> template view, once per item)", cumulative("layouts/render.py", "item_view")),
        ("  template execution (_run, every format)", cumulative("layouts/render.py", "_run")),
        (
            "    of which email (_render_document: HTML + text templates)",
            cumulative("layouts/render.py", "_render_document"),
        ),
        (
            "    of which the excerpt filter (layouts.filters.excerpt)",
            cumulative("layouts/filters.py", "excerpt"),
        ),
        (
            "      of which HTML -> text (layouts.html.plain_text)",
            cumulative("layouts/html.py", "plain_text"),
        ),
        ("  ModuleBuilder.finish (modules from the output)", cumulative("layouts/modules.py", "finish")),
        ("provider_calls (layouts.formats)", cumulative("layouts/formats/__init__.py", "provider_calls")),
        ("validate_call (layouts.formats)", cumulative("layouts/formats/__init__.py", "validate_call")),
        (
            "  of which email.validate (3 regex scans of the HTML)",
            cumulative("layouts/formats/email.py", "validate"),
        ),
        ("  of which telegram.validate", cumulative("layouts/formats/telegram.py", "validate")),
        ("valid_url (payloads and validators)", cumulative("layouts/formats/_check.py", "valid_url")),
    ]
    text = io.StringIO()
    report = pstats.Stats(profiler, stream=text)
    report.sort_stats("cumulative").print_stats(60)
    report.sort_stats("tottime").print_stats(40)
    summary = {
        "wall_s_profiled": wall,
        "total_tottime_s": sum(v[2] for v in raw.values()),
        "errors": len(errors),
        "phases": [{"phase": name, "cumtime": value} for name, value in phases],
        "top_cumulative": rows(3, 10, skip_bench=True),
        "top_tottime": rows(2, 10, skip_bench=False),
        "prof": shown(out.with_suffix(".prof")),
        "text": shown(out.with_suffix(".txt")),
    }
    out.with_suffix(".txt").write_text(text.getvalue(), encoding="utf-8")
    return summary, text.getvalue()


def profile_lines(prof: dict[str, Any]) -> list[str]:
    return [
        f"Profile (cProfile, one pass of (3) over every layout and format: {prof['wall_s_profiled']:.1f} s "
        "profiled wall time; profiled times are inflated, compare them with each other):",
        "",
        "| phase | cumtime s |",
        "|---|---:|",
        *(f"| {p['phase'].replace('  ', '&nbsp;&nbsp;')} | {p['cumtime']:.2f} |" for p in prof["phases"]),
        "",
        "Top 10 cumulative (the benchmark's own loop left out):",
        "",
        "| cumtime s | tottime s | calls | function |",
        "|---:|---:|---:|---|",
        *(
            f"| {r['cumtime']:.2f} | {r['tottime']:.2f} | {r['ncalls']} | `{r['function']}` |"
            for r in prof["top_cumulative"]
        ),
        "",
        "Top 10 self time:",
        "",
        "| cumtime s | tottime s | calls | function |",
        "|---:|---:|---:|---|",
        *(
            f"| {r['cumtime']:.2f} | {r['tottime']:.2f} | {r['ncalls']} | `{r['function']}` |"
            for r in prof["top_tottime"]
        ),
        "",
    ]


# --------------------------------------------------------------------------- reporting


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def ratio(base: float, rate: float) -> str:
    value = base / rate
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def table(res: dict[str, Any]) -> str:
    """Items/s per (layout, measurement) x format, in brackets the baseline's items/s / the cell's."""
    base = res["baseline"][BASE]["items_per_s"]
    lines = [
        "| layout | measurement | " + " | ".join(FORMATS) + " |",
        "|---|---|" + "---:|" * len(FORMATS),
    ]
    for name in res["layouts"]:
        for mode in MODES:
            cells = [
                f"{fmt_rate(r['items_per_s'])} ({ratio(base, r['items_per_s'])})"
                for r in (res["results"][name][fmt][mode] for fmt in FORMATS)
            ]
            lines.append(f"| {name} | {MODE_LABELS[mode]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_table(res: dict[str, Any]) -> str:
    base = res["baseline"][BASE]["items_per_s"]
    lines = [
        "| reference (same items, same run) | items/s | µs/item | runs (s) |",
        "|---|---:|---:|---|",
    ]
    for b in res["baseline"].values():
        runs = " / ".join(f"{x:.3f}" for x in b["runs_s"])
        lines.append(
            f"| {b['what']} | {fmt_rate(b['items_per_s'])} ({ratio(base, b['items_per_s'])}) | "
            f"{1e6 / b['items_per_s']:.1f} | {runs} |"
        )
    return "\n".join(lines)


def summary_table(res: dict[str, Any]) -> str:
    """Per format: the (3) throughput of each layout, and the stage costs in µs per item."""
    lines = [
        "| format | layout | messages | calls | µs/item render | + provider_calls | + validate_call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fmt in FORMATS:
        for name in res["layouts"]:
            r = res["results"][name][fmt]
            us = [1e6 / r[m]["items_per_s"] for m in MODES]
            lines.append(
                f"| {fmt} | {name} | {r['messages']} | {r['calls']} | {us[0]:.0f} | "
                f"{us[1] - us[0]:+.0f} | {us[2] - us[1]:+.0f} |"
            )
    return "\n".join(lines)


def readme_entry(res: dict[str, Any]) -> str:
    m, cfg, c, sp = res["machine"], res["config"], res["corpus"], res["spread"]
    base = res["baseline"][BASE]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out = [
        f"### render — {res['date']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"{m['os']}; load average before the run {' / '.join(map(str, m['loadavg_before']))}",
        f"- code: commit {m['commit']} (+ working tree); {versions}",
        f"- command: `{res['command']}`",
        f"- items: {c['items']:,} from {c['files']} corpus files "
        f"({', '.join(f'{k} {v:,}' for k, v in c['items_by_kind'].items())}); "
        f"{cfg['repeat']} repetition(s), median; {res['elapsed_s']:.0f} s in all",
        f"- errors: {res['errors_total']}",
        f"- noise: spread of the repetitions ((max - min) / median) {100 * sp['median']:.0f} % in the median "
        f"cell, {100 * sp['max']:.0f} % at most ({sp['max_cell']})",
        "",
        f"Items rendered per second; in brackets, the baseline's {fmt_rate(base['items_per_s'])} items/s "
        "divided by the cell's:",
        "",
        table(res),
        "",
        baseline_table(res),
        "",
        "How to read it: each cell is corpus items per second through one (layout, format), median "
        "wall time; (2) and (3) include (1). The bracket is the baseline's items/s divided by the "
        "cell's: the price per item of feedcast's item views, sandbox, sanitising/excerpts, limits and "
        "module building (and, in (2)/(3), payload building and validation) over a template that "
        "prints two raw fields. Per-item layouts (single, product) give one message per item; campaign "
        "layouts (digest, carousel, plain) one per batch of max_items from the same file, so their "
        "per-message cost is 10-20x the per-item figure. Ratios travel between machines better than "
        "items/s. Stage costs per item are in the JSON (`"
        + res["json"]
        + "`)"
        + (f", the profile in `{res['profile']['text']}`." if res.get("profile") else "."),
        "",
    ]
    if res.get("profile"):
        out += profile_lines(res["profile"])
    return "\n".join(out)


def append_readme(entry: str) -> Path:
    return _append_readme(README_SECTION, entry)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: first {QUICK_ITEMS_PER_FILE} items per file, 1 repetition, no profile, no README",
    )
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default 3; quick 1)")
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cProfile one extra pass (default: on, off with --quick)",
    )
    p.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append the results to bench/README.md (default: on, off with --quick)",
    )
    p.add_argument("--out", type=Path, default=BENCH / "results", help="where the JSON goes")
    args = p.parse_args(argv)
    full = not args.quick
    if args.repeat is None:
        args.repeat = 3 if full else 1
    for name in ("profile", "readme"):
        if getattr(args, name) is None:
            setattr(args, name, full)
    return args


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    date = datetime.now(UTC)
    stamp = date.strftime("%Y-%m-%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"render-{stamp}.json"
    m = machine(("jinja2", "markupsafe", "babel"))

    per_file = QUICK_ITEMS_PER_FILE if args.quick else None
    wall, _, files = timed(lambda: load_corpus(per_file))
    all_items = [item for f in files for item in f.items]
    n = len(all_items)
    by_kind = {kind: sum(len(f.items) for f in files if f.kind == kind) for kind in KINDS}
    log(f"corpus: {n} items from {len(files)} files ({by_kind}), parsed in {wall:.1f} s")

    layouts = {name: load_layout(name) for name in LAYOUTS}
    plan = {name: batches(files, layout.max_items) for name, layout in layouts.items()}
    baselines = baseline_renderers()
    errors: list[str] = []

    # warm-up and counts: one untimed pass of (3) per (layout, format) and of each baseline
    counts: dict[str, dict[str, Counts]] = {}
    for name, layout in layouts.items():
        counts[name] = {fmt: run_pass(layout, fmt, plan[name], "validate", errors) for fmt in FORMATS}
    for run in baselines.values():
        run(all_items)
    warm_errors = sum(c.errors for per in counts.values() for c in per.values())
    log(f"warm-up pass done ({warm_errors} errors)")

    walls: dict[tuple[str, str, str], list[float]] = {}
    cpus: dict[tuple[str, str, str], list[float]] = {}
    base_walls: dict[str, list[float]] = {k: [] for k in baselines}
    base_cpus: dict[str, list[float]] = {k: [] for k in baselines}
    timed_errors = 0
    for rep in range(args.repeat):
        for label, run in baselines.items():
            w, c, _ = timed(lambda run=run: run(all_items))
            base_walls[label].append(w)
            base_cpus[label].append(c)
        for name, layout in layouts.items():
            for fmt in FORMATS:
                for mode in MODES:
                    w, c, got = timed(
                        lambda layout=layout, fmt=fmt, mode=mode: run_pass(
                            layout, fmt, plan[layout.name], mode, errors
                        )
                    )
                    walls.setdefault((name, fmt, mode), []).append(w)
                    cpus.setdefault((name, fmt, mode), []).append(c)
                    timed_errors += got.errors
        for label, run in baselines.items():  # the baseline before and after each repetition
            w, c, _ = timed(lambda run=run: run(all_items))
            base_walls[label].append(w)
            base_cpus[label].append(c)
        log(f"repetition {rep + 1}/{args.repeat} done")

    res: dict[str, Any] = {
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "bench/render.py" + ("".join(f" {a}" for a in sys.argv[1:])),
        "machine": m,
        "config": {
            "repeat": args.repeat,
            "quick": args.quick,
            "items_per_file": per_file,
            "context": {
                "site_title": CONTEXT.site_title,
                "automation": CONTEXT.automation,
                "now": NOW.isoformat(),
            },
            "max_items": {name: layout.max_items for name, layout in layouts.items()},
            "per": {name: layout.per for name, layout in layouts.items()},
        },
        "corpus": {
            "files": len(files),
            "items": n,
            "items_by_kind": by_kind,
            "items_per_file": {f"{f.kind}/{f.name}": len(f.items) for f in files},
        },
        "layouts": list(layouts),
        "baseline": {
            label: {
                "what": REFERENCE_LABELS[label],
                "runs_s": base_walls[label],
                "cpu_s": base_cpus[label],
                "median_s": statistics.median(base_walls[label]),
                "items_per_s": n / statistics.median(base_walls[label]),
            }
            for label in baselines
        },
        "results": {},
    }
    for name in layouts:
        res["results"][name] = {}
        for fmt in FORMATS:
            c = counts[name][fmt]
            entry: dict[str, Any] = {
                "batches": len(plan[name]),
                "messages": c.messages,
                "calls": c.calls,
                "errors": c.errors,
            }
            for mode in MODES:
                runs = walls[(name, fmt, mode)]
                med = statistics.median(runs)
                entry[mode] = {
                    "runs_s": runs,
                    "cpu_s": cpus[(name, fmt, mode)],
                    "median_s": med,
                    "items_per_s": n / med,
                    "us_per_item": 1e6 * med / n,
                    "us_per_message": 1e6 * med / c.messages if c.messages else None,
                }
            res["results"][name][fmt] = entry
    res["errors_total"] = warm_errors + timed_errors
    spreads = sorted(
        ((max(e[m]["runs_s"]) - min(e[m]["runs_s"])) / e[m]["median_s"], f"{name}/{fmt}/{m}")
        for name, per in res["results"].items()
        for fmt, e in per.items()
        for m in MODES
    )
    res["spread"] = {
        "what": "(max - min) / median of the repetitions, over every cell",
        "median": statistics.median(v for v, _ in spreads),
        "max": spreads[-1][0],
        "max_cell": spreads[-1][1],
    }
    res["errors"] = errors
    res["json"] = shown(out)

    if args.profile:
        log("profiling one pass of (3) over every layout and format")
        res["profile"], _ = profile_pass(layouts, files, args.out / f"render-{stamp}-profile")
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["elapsed_s"] = time.perf_counter() - started
    out.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")

    print()
    base = res["baseline"][BASE]["items_per_s"]
    print(
        f"Items/s over {n} items, median of {args.repeat} (in brackets: baseline {base:,.0f} items/s / cell)"
    )
    print(table(res))
    print()
    print(baseline_table(res))
    print()
    print(summary_table(res))
    print()
    if "profile" in res:
        print("\n".join(profile_lines(res["profile"])))
    if errors:
        print(f"{res['errors_total']} errors; the first ones:")
        print("\n".join(errors[:10]))
    print(f"results in {res['json']}; {res['elapsed_s']:.0f} s in all")
    if args.readme:
        readme = append_readme(readme_entry(res))
        log(f"entry appended to {readme.relative_to(ROOT)}")
    return 1 if res["errors_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
