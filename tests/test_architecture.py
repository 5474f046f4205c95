"""The shape of the code (docs/architecture.md): imports point down (the contract in
pyproject.toml, checked by import-linter), the stages and the kernel load nothing heavy
when imported on their own, and the package itself imports nothing on import."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# not rich: httpx's own __init__ loads it (for its command line) when it is installed
HEAVY = ("duckdb", "pyarrow", "prefect", "typer", "starlette", "uvicorn", "feedcast.store")
STAGES = ("sources", "layouts", "channels")


def _modules(package: str) -> list[str]:
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package.replace(".", "/"))], prefix=package + "."):
        found.append(info.name)
    return sorted(found)


def test_the_import_contract_holds() -> None:
    """Layers point down, no cycles between the modules of a package, no SQL outside the
    store, no Prefect outside flows/ (the contracts in pyproject.toml)."""
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_stages_and_the_kernel_load_nothing_heavy() -> None:
    """Each module of sources/, layouts/, channels/ and feedcast.kernel imported alone,
    each in a fresh interpreter's sys.modules as it grows: none loads DuckDB, pyarrow,
    Prefect, the store, the CLI or the web framework (``rich`` comes with httpx)."""
    modules = [m for package in (*STAGES, "feedcast.kernel") for m in _modules(package)]
    assert len(modules) > 25  # the walk found the packages
    script = (
        "import importlib, json, sys\n"
        f"heavy = {HEAVY!r}\n"
        "out = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    importlib.import_module(name)\n"
        "    out[name] = sorted(h for h in heavy if h in sys.modules)\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert {name: heavy for name, heavy in loaded.items() if heavy} == {}
    assert sorted(loaded) == sorted(modules)


def test_importing_feedcast_loads_nothing_until_used() -> None:
    script = (
        "import sys, feedcast\n"
        "before = sorted(m for m in sys.modules if m.startswith(('feedcast.', 'duckdb')))\n"
        "feedcast.Store\n"
        "print(before, 'feedcast.store' in sys.modules, feedcast.__version__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["['feedcast.kernel']", "True", "0.1.0"]


def test_the_exception_tree_is_drawn_whole() -> None:
    """Every public exception class of the product (found in the source, by its bases) is
    drawn in the tree of feedcast.kernel.errors' docstring, where they are defined (the
    emulators in feedcast.sandbox excepted)."""
    import ast

    import feedcast.kernel.errors as errors

    classes: dict[str, tuple[str, set[str]]] = {}  # name -> (file, names of its bases)
    for package in ("feedcast", *STAGES, "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "feedcast" / "sandbox"):
                continue  # the emulators' control errors are theirs (the docstring says so)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                    classes[node.name] = (str(path.relative_to(ROOT)), bases)
    exceptions = {"BaseException", "Exception", "ValueError"}
    while grown := {n for n, (_, bases) in classes.items() if bases & exceptions and n not in exceptions}:
        exceptions |= grown
    public = {n: classes[n][0] for n in exceptions if n in classes and not n.startswith("_")}
    drawn = {line.lstrip("│├└─ ").split(" ", 1)[0] for line in (errors.__doc__ or "").splitlines()}
    assert len(public) > 15  # the walk found them
    assert {n: f for n, f in public.items() if n not in drawn} == {}
    assert set(errors.__all__) <= drawn
