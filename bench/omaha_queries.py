"""Per step of the update flow: SQL statements issued and in-process time, without HTTP.

Complements the fleet simulator's py-spy profile with exact numbers: how many SELECT /
INSERT / UPDATE statements and transactions each Omaha request costs, how long
`OmahaEndpoint.respond` takes for it in one thread with no contention, and how long
parsing the request and rendering the answer take. Subtracting these from the server
CPU time per request measured over HTTP gives the framework's share.

    .venv/bin/python bench/omaha_queries.py [--nodes 300] [--database postgresql://...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_client import REGISTRATION, WALK, Step, make_fleet, omaha_request
from fleet_setup import publish_release, release_version, seed_catalog
from wellcar.omaha import parse_request, render_request, render_response
from wellcar.server.db.engine import create_db_engine, sqlite_url
from wellcar.server.omaha_endpoint import OmahaContext, OmahaEndpoint


@dataclass
class StepCost:
    requests: int = 0
    statements: Counter[str] = field(default_factory=Counter)
    respond_s: float = 0.0
    driver_s: float = 0.0  # inside cursor.execute: the database engine itself
    parse_s: float = 0.0
    render_s: float = 0.0

    def per_request(self, verb: str) -> float:
        return self.statements[verb] / self.requests if self.requests else 0.0


def _verb(statement: str) -> str:
    word = statement.lstrip().split(None, 1)[0].upper()
    return word if word in ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN") else "other"


def measure(url: str, nodes: int) -> dict[Step, StepCost]:
    db = seed_catalog(url)
    engine = create_db_engine(url, pool_size=2)
    current: list[StepCost | None] = [None]

    started = [0.0]

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        cost = current[0]
        if cost is not None:
            cost.statements[_verb(statement)] += 1
        started[0] = time.perf_counter()

    def after_execute(*_args: Any) -> None:
        cost = current[0]
        if cost is not None:
            cost.driver_s += time.perf_counter() - started[0]

    def on_commit(_conn: Any) -> None:
        cost = current[0]
        if cost is not None:
            cost.statements["COMMIT"] += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "commit", on_commit)
    endpoint = OmahaEndpoint(engine, lambda: datetime.now(UTC).replace(tzinfo=None))
    ctx = OmahaContext("127.0.0.1")
    fleet = make_fleet(nodes)
    costs: dict[Step, StepCost] = {s: StepCost() for s in Step}

    def run(step: Step, round_no: int) -> None:
        cost = costs[step]
        for node in fleet:
            boot = node.boot_ids[0].decode()
            body = render_request(omaha_request(step, round_no, node.machine_id.decode(), boot))
            t0 = time.perf_counter()
            req = parse_request(body, "text/xml")
            t1 = time.perf_counter()
            current[0] = cost
            resp = endpoint.respond(req, ctx)
            current[0] = None
            t2 = time.perf_counter()
            render_response(resp)
            t3 = time.perf_counter()
            cost.requests += 1
            cost.parse_s += t1 - t0
            cost.respond_s += t2 - t1
            cost.render_s += t3 - t2

    for step in REGISTRATION:
        run(step, 0)
    publish_release(db, engine, release_version(1))
    for step in WALK:  # every node takes each step before the next step (a wave)
        run(step, 0)
    engine.dispose()
    return costs


@dataclass
class ReadCost:
    name: str
    statements: int
    wellcar_us: float  # the server's function, through SQLAlchemy Core
    driver_us: float  # the same SQL and parameters, executed and fetched on the raw DBAPI


def read_path_costs(url: str, nodes: int, repeat: int = 400) -> list[ReadCost]:
    """Cost of the hot read functions versus the SQL they send, on a registered fleet.

    The difference is what SQLAlchemy Core (statement building, cache key, parameter
    processing, result rows) and the function's own Python add per call.
    """
    from wellcar.server.data.applications import find_application
    from wellcar.server.fleet_codes import Arch
    from wellcar.server.instances import get_instance_app
    from wellcar.server.omaha_reads import find_group, load_group

    db = seed_catalog(url)
    engine = create_db_engine(url, pool_size=2)
    endpoint = OmahaEndpoint(engine, lambda: datetime.now(UTC).replace(tzinfo=None))
    fleet = make_fleet(nodes)
    for node in fleet:
        req = omaha_request(Step.REGISTER, 0, node.machine_id.decode(), node.boot_ids[0].decode())
        endpoint.respond(parse_request(render_request(req), "text/xml"), OmahaContext("x"))
    mid = fleet[0].machine_id.decode()
    calls: list[tuple[str, Callable[[Any], object]]] = [
        (
            "find_application",
            lambda c: find_application(c, "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"),
        ),
        ("find_group", lambda c: find_group(c, db.app_id, "stable", Arch.AMD64)),
        ("load_group", lambda c: load_group(c, db.group_id)),
        ("get_instance_app", lambda c: get_instance_app(c, mid, db.app_id)),
    ]
    out: list[ReadCost] = []
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
        captured.append((statement, params))

    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for name, fn in calls:
            captured.clear()
            event.listen(engine, "before_cursor_execute", capture)
            fn(conn)
            event.remove(engine, "before_cursor_execute", capture)
            # The transaction is already open (SQLite's BEGIN IMMEDIATE on first use).
            statements = [(q, p) for q, p in captured if _verb(q) != "BEGIN"]
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn(conn)
            wellcar = (time.perf_counter() - t0) / repeat
            cur = raw.cursor()
            t0 = time.perf_counter()
            for _ in range(repeat):
                for sql, params in statements:
                    cur.execute(sql, params)
                    cur.fetchall()
            driver = (time.perf_counter() - t0) / repeat
            cur.close()
            out.append(ReadCost(name, len(statements), 1e6 * wellcar, 1e6 * driver))
        conn.rollback()
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--database", help="postgresql://... (default: a temporary SQLite file)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wellcar-queries-") as tmp:
        costs = measure(a.database or sqlite_url(Path(tmp) / "walk"), a.nodes)
        if a.database:
            # A second catalog in the same database would make find_group ambiguous.
            reads: list[ReadCost] = []
        else:
            reads = read_path_costs(sqlite_url(Path(tmp) / "reads"), a.nodes)
    backend = "PostgreSQL" if a.database else "SQLite"
    table = Table(title=f"Per Omaha request ({backend}, {a.nodes} nodes, one thread, no HTTP)")
    verbs = ("SELECT", "INSERT", "UPDATE", "BEGIN", "COMMIT")
    for col in (
        "step",
        *verbs,
        "statements",
        "respond µs",
        "of which in driver µs",
        "parse µs",
        "render µs",
    ):
        table.add_column(col, justify="left" if col == "step" else "right")
    for step, c in costs.items():
        if not c.requests:
            continue
        total = sum(v for k, v in c.statements.items() if k != "COMMIT") / c.requests
        table.add_row(
            step.label,
            *(f"{c.per_request(v):.1f}" for v in verbs),
            f"{total:.1f}",
            f"{1e6 * c.respond_s / c.requests:.0f}",
            f"{1e6 * c.driver_s / c.requests:.0f}",
            f"{1e6 * c.parse_s / c.requests:.0f}",
            f"{1e6 * c.render_s / c.requests:.0f}",
        )
    console = Console(width=160)
    console.print(table)
    if reads:
        rt = Table(
            title="Hot read functions: through SQLAlchemy Core vs the same SQL on the driver"
        )
        for col in ("function", "statements", "wellcar µs", "raw driver µs", "ratio"):
            rt.add_column(col, justify="left" if col == "function" else "right")
        for r in reads:
            rt.add_row(
                r.name,
                str(r.statements),
                f"{r.wellcar_us:.0f}",
                f"{r.driver_us:.1f}",
                f"{r.wellcar_us / r.driver_us:.0f}x",
            )
        console.print(rt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
