"""The command line of `benchmarks/run`: every option checked, bad input one line naming it."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

SECTIONS = ("deploy", "image", "prefetch", "embeddings", "search", "fleet")
# fleet makes hosts of its own and takes ~20 minutes: only when asked for.
DEFAULT_SECTIONS = tuple(name for name in SECTIONS if name != "fleet")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSON = REPO / "build" / "reports" / "benchmark.json"


class OptionError(ValueError):
    """A bad option or environment value; the message names it and what is accepted."""


@dataclass(frozen=True)
class Options:
    sections: tuple[str, ...]
    cold: bool  # deploy: destroy and re-create the demo host first
    rounds: int  # interleaved rounds of each embeddings/prefetch measurement
    clients: tuple[int, ...]
    block_requests: int  # most requests per timed block
    block_seconds: float  # most seconds per timed block
    docs: tuple[int, ...]  # stored documents at each search step, increasing
    queries: int  # search test set
    search_requests: int  # timed searches per step
    json_path: Path
    host: str  # the demo host container (NICA_TEST_HOST)
    port: int  # its published port on 127.0.0.1 (NICA_DEMO_PORT)
    metrics_cost: bool = False  # embeddings: metrics on vs off instead of the anchors


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def int_list(low: int, high: int, *, increasing: bool) -> Callable[[str], tuple[int, ...]]:
    one = bounded_int(low, high)

    def parse(text: str) -> tuple[int, ...]:
        values = tuple(one(part.strip()) for part in text.split(",") if part.strip())
        if not values:
            raise argparse.ArgumentTypeError("give at least one number, comma separated")
        if increasing and any(b <= a for a, b in itertools.pairwise(values)):
            raise argparse.ArgumentTypeError(f"{text!r} must be increasing")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r} names a value twice")
        return values

    return parse


def section_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown) or '(none)'}; choose from {', '.join(SECTIONS)}"
        )
    return tuple(name for name in SECTIONS if name in names)  # always in run order


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1.0 <= value <= 120.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside 1..120 seconds")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise OptionError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="benchmarks/run",
        description="One benchmark run against the demo host; a table, and the same as JSON.",
    )
    p.add_argument(
        "--sections",
        type=section_list,
        default=DEFAULT_SECTIONS,
        help=f"comma separated, of {','.join(SECTIONS)} (default: all but fleet)",
    )
    p.add_argument(
        "--keep-host",
        action="store_true",
        help="deploy: keep the demo host as it is (no cold deploy, only the redeploys)",
    )
    p.add_argument("--rounds", type=bounded_int(1, 10), default=3, help="interleaved rounds (3)")
    p.add_argument(
        "--clients",
        type=int_list(1, 64, increasing=True),
        default=(1, 16),
        help="concurrent embedding clients (1,16)",
    )
    p.add_argument(
        "--block-requests",
        type=bounded_int(10, 5000),
        default=400,
        help="most requests in one timed block (400)",
    )
    p.add_argument(
        "--block-seconds",
        type=positive_seconds,
        default=12.0,
        help="most seconds of one timed block (12)",
    )
    p.add_argument(
        "--docs",
        type=int_list(100, 200_000, increasing=True),
        default=(1_000, 10_000, 100_000),
        help="stored documents at each search step (1000,10000,100000)",
    )
    p.add_argument(
        "--queries", type=bounded_int(10, 1000), default=100, help="search test set size (100)"
    )
    p.add_argument(
        "--search-requests",
        type=bounded_int(10, 5000),
        default=200,
        help="timed searches per step (200)",
    )
    p.add_argument(
        "--metrics-cost",
        action="store_true",
        help="embeddings: instead of the comparison with Infinity, the same backend with "
        "metrics on and off side by side (local uvicorn on 127.0.0.1; no demo host needed)",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"(default {DEFAULT_JSON})")
    return p


def parse(argv: Sequence[str], env: Mapping[str, str]) -> Options:
    """Options from the command line and NICA_TEST_HOST / NICA_DEMO_PORT; OptionError if bad."""
    args = parser().parse_args(list(argv))
    port_text = env.get("NICA_DEMO_PORT", "18000")
    try:
        port = bounded_int(1024, 65535)(port_text)
    except argparse.ArgumentTypeError as error:
        raise OptionError(f"NICA_DEMO_PORT: {error}") from None
    host = env.get("NICA_TEST_HOST", "nica-debian13-host")
    if not host or not all(c.isalnum() or c in "-_." for c in host):
        raise OptionError(f"NICA_TEST_HOST: {host!r} is not a container name")
    if args.keep_host and "deploy" not in args.sections:
        raise OptionError("--keep-host only applies to the deploy section")
    if args.metrics_cost and "embeddings" not in args.sections:
        raise OptionError("--metrics-cost only applies to the embeddings section")
    return Options(
        sections=args.sections,
        cold=not args.keep_host,
        rounds=args.rounds,
        clients=args.clients,
        block_requests=args.block_requests,
        block_seconds=args.block_seconds,
        docs=args.docs,
        queries=args.queries,
        search_requests=args.search_requests,
        json_path=args.json,
        host=host,
        port=port,
        metrics_cost=args.metrics_cost,
    )


def parse_or_exit(argv: Sequence[str]) -> Options:
    try:
        return parse(argv, os.environ)
    except OptionError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
