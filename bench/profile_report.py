"""Summarize a py-spy "raw" profile (collapsed stacks) into where the server's time goes.

py-spy samples only threads that are running on a CPU (idle threads, and threads waiting
for the GIL or for SQLite's busy handler, are left out by default), so shares of samples
are shares of the server's CPU time.

Each sample is put in one category by its innermost frame that belongs to a known
layer, walking outwards past standard-library frames (a `uuid.UUID()` call made by
`canonical_uuid` counts as server logic). Driver calls (`cursor.execute`, `fetch*`) are
where the C code of sqlite3 or psycopg runs, so they stand for the database itself.

    .venv/bin/python bench/profile_report.py var/profile/sqlite-10000-w1.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")

# (category, test on "file" of a frame, test on "func"); first match wins, innermost frame first.
CATEGORIES: list[tuple[str, str, tuple[str, ...] | None]] = [
    (
        "db driver (sqlite3/psycopg C code, SQL execution)",
        "sqlalchemy/engine/default.py",
        ("do_execute", "do_executemany", "do_execute_no_params", "do_commit", "do_rollback"),
    ),
    ("db driver (sqlite3/psycopg C code, SQL execution)", "psycopg/", None),
    ("db driver (sqlite3/psycopg C code, SQL execution)", "sqlite3/", None),
    ("db connect/pool/transaction (SQLAlchemy)", "sqlalchemy/pool/", None),
    ("SQLAlchemy Core (compile, cache keys, params, results)", "sqlalchemy/", None),
    ("Omaha parse (lxml)", "wellcar/omaha/parse", None),
    ("Omaha parse (lxml)", "lxml/", None),
    ("Omaha render", "wellcar/omaha/render", None),
    ("Omaha render", "wellcar/omaha/", None),
    ("metrics (prometheus_client)", "prometheus_client/", None),
    ("server logic (wellcar.server, Python)", "wellcar/", None),
    ("framework: FastAPI/Starlette routing, request/response", "fastapi/", None),
    ("framework: FastAPI/Starlette routing, request/response", "starlette/", None),
    ("framework: anyio thread handoff", "anyio/", None),
    ("framework: uvicorn HTTP (httptools) + event loop", "uvicorn/", None),
    ("framework: uvicorn HTTP (httptools) + event loop", "uvloop", None),
    ("framework: uvicorn HTTP (httptools) + event loop", "asyncio/", None),
]


@dataclass(frozen=True, slots=True)
class Frame:
    func: str
    file: str

    @property
    def short(self) -> str:
        f = self.file
        for marker in ("site-packages/", "/src/", "lib/python3"):
            if marker in f:
                f = f.split(marker, 1)[1]
                break
        return f"{self.func} ({f})"


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text)
    if m is None:
        return Frame(text, "")
    return Frame(m["func"], m["file"])


def categorize(stack: list[Frame]) -> str:
    for frame in reversed(stack):  # innermost first
        for name, file_part, funcs in CATEGORIES:
            if file_part in frame.file and (
                funcs is None or frame.func.rsplit(".", 1)[-1] in funcs
            ):
                return name
    return "other (stdlib, interpreter)"


@dataclass
class ProfileReport:
    label: str
    samples: int
    categories: list[tuple[str, float]]  # (category, % of samples)
    top_self: list[tuple[str, float]]  # leaf functions
    top_inclusive: list[tuple[str, float]]  # wellcar.* functions, time including callees
    top_sql_callers: list[tuple[str, float]] = field(default_factory=list)

    def print(self, console: Console) -> None:
        console.print(f"[bold]Profile {self.label}[/bold]: {self.samples:,} samples (on-CPU)")
        for title, rows in (
            ("category", self.categories),
            ("self time (leaf frame)", self.top_self),
            ("inclusive time, wellcar functions", self.top_inclusive),
            ("SQL execution by calling wellcar function", self.top_sql_callers),
        ):
            t = Table(title=f"{self.label}: {title}", title_justify="left")
            t.add_column(title)
            t.add_column("% samples", justify="right")
            for name, pct in rows:
                t.add_row(name, f"{pct:.1f}")
            console.print(t)


def summarize_profile(path: Path, label: str, top: int = 20) -> ProfileReport:
    cats: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    sql_by_caller: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        n = int(count_text)
        stack = [parse_frame(f) for f in stack_text.split(";")]
        total += n
        cat = categorize(stack)
        cats[cat] += n
        leaf[stack[-1].short] += n
        seen = set()
        for frame in stack:
            if "wellcar/" in frame.file and frame.short not in seen:
                seen.add(frame.short)
                incl[frame.short] += n
        if cat.startswith("db driver"):
            # Which server function issued the statement: the innermost wellcar frame.
            caller = next(
                (f.short for f in reversed(stack) if "wellcar/" in f.file),
                "(no wellcar frame: stack truncated by py-spy)",
            )
            sql_by_caller[caller] += n

    def pct(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, 100 * n / total) for name, n in counter.most_common(k)] if total else []

    return ProfileReport(
        label, total, pct(cats, 20), pct(leaf, top), pct(incl, top), pct(sql_by_caller, 12)
    )


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    console = Console(width=160)
    for name in argv[1:]:
        summarize_profile(Path(name), Path(name).stem).print(console)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
