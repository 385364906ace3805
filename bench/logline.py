"""Micro-benchmark of the log line formatters on the server's typical lines.

Prints microseconds per formatted record for Wellcar's logfmt and JSON formatters, side by
side with the baseline they replaced in spirit: the stdlib formatter with the values
%-formatted into the message (which escapes nothing), and the ratio. Three records: a plain
"update granted" line, the same with hostile values (newlines, ESC, bidi), and a 64 KiB
value that is clipped.

    .venv/bin/python bench/logline.py [--number N]
"""

from __future__ import annotations

import argparse
import logging
import timeit

from wellcar.logline import JsonFormatter, LogfmtFormatter, log_fields

PLAIN = {"machine_id": "2f1e1a0c8d0c4b7f9d1b5a3c6e7f8a9b", "from_version": "4893.0.0",
         "to_version": "4893.0.1"}  # fmt: skip
HOSTILE = {"machine_id": "abc\nts=2026 level=error \x1b[2J\u202e" * 4, "from_version": "1\r2",
           "to_version": "\u009b31m"}  # fmt: skip
LONG = {"machine_id": "m" * 65536, "from_version": "4893.0.0", "to_version": "4893.0.1"}


def structured(values: dict[str, str]) -> logging.LogRecord:
    rec = logging.LogRecord("wellcar.server.omaha", logging.INFO, __file__, 1, "update granted",
                            None, None)  # fmt: skip
    rec.__dict__.update(log_fields(**values))
    return rec


def formatted(values: dict[str, str]) -> logging.LogRecord:
    message = "update granted: %s %s -> %s"
    args = tuple(values.values())
    return logging.LogRecord("wellcar.server.omaha", logging.INFO, __file__, 1, message, args, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    baseline = logging.Formatter(
        'ts=%(asctime)s level=%(levelname)s logger=%(name)s msg="%(message)s"'
    )
    logfmt, json_lines = LogfmtFormatter(), JsonFormatter()
    heads = ("record", "baseline µs", "logfmt µs", "json µs", "logfmt/base", "json/base")
    print("{:<10} {:>12} {:>10} {:>8} {:>12} {:>10}".format(*heads))
    for name, values in (("plain", PLAIN), ("hostile", HOSTILE), ("64KiB", LONG)):
        rec_s, rec_f = structured(values), formatted(values)
        timings = []
        for formatter, rec in ((baseline, rec_f), (logfmt, rec_s), (json_lines, rec_s)):
            seconds = min(
                timeit.repeat(lambda f=formatter, r=rec: f.format(r), number=args.number, repeat=3)
            )
            timings.append(seconds / args.number * 1e6)
        base, lf, js = timings
        ratios = f"{lf / base:>11.2f}x {js / base:>9.2f}x"
        print(f"{name:<10} {base:>12.2f} {lf:>10.2f} {js:>8.2f} {ratios}")
    line = logfmt.format(structured(LONG))
    print(f"64 KiB value: logfmt line is {len(line)} characters (baseline: "
          f"{len(baseline.format(formatted(LONG)))})")  # fmt: skip


if __name__ == "__main__":
    main()
