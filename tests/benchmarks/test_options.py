"""benchmarks/nicabench/options.py: the command line of benchmarks/run and its checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.nicabench.options import SECTIONS, OptionError, parse

REPO = Path(__file__).resolve().parents[2]
ENV = {"NICA_TEST_HOST": "nica-bench-host", "NICA_DEMO_PORT": "18100"}


def test_defaults_run_every_section_but_the_fleet_against_the_hosts_port() -> None:
    options = parse([], ENV)
    assert options.sections == tuple(name for name in SECTIONS if name != "fleet")
    assert options.cold, "by default the deploy section starts from a bare host"
    assert options.clients == (1, 16)
    assert options.docs == (1_000, 10_000, 100_000)
    assert (options.host, options.port) == ("nica-bench-host", 18100)


def test_metrics_cost_is_off_unless_asked_for() -> None:
    assert not parse([], ENV).metrics_cost
    assert parse(["--sections", "embeddings", "--metrics-cost"], ENV).metrics_cost


def test_sections_run_in_their_fixed_order_whatever_the_order_given() -> None:
    assert parse(["--sections", "search,image"], ENV).sections == ("image", "search")
    assert parse(["--sections", "fleet,deploy"], ENV).sections == ("deploy", "fleet")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--sections", "deploy,speed"],
            "argument --sections: unknown section speed; choose from deploy, image",
        ),
        (["--rounds", "0"], "argument --rounds: 0 is outside 1..10"),
        (["--rounds", "two"], "argument --rounds: 'two' is not a whole number"),
        (["--clients", "16,1"], "argument --clients: '16,1' must be increasing"),
        (["--clients", "1,100"], "argument --clients: 100 is outside 1..64"),
        (["--docs", "1000,1000"], "argument --docs: '1000,1000' must be increasing"),
        (["--docs", "1000,500000"], "argument --docs: 500000 is outside 100..200000"),
        (["--block-seconds", "600"], "argument --block-seconds: 600 is outside 1..120 seconds"),
        (["--sections", "search", "--keep-host"], "--keep-host only applies to the deploy"),
        (["--sections", "search", "--metrics-cost"], "--metrics-cost only applies to the em"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_options_are_refused_naming_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError, match="^" + re.escape(message)):
        parse(argv, ENV)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NICA_DEMO_PORT": "80"}, "NICA_DEMO_PORT: 80 is outside 1024..65535"),
        ({"NICA_DEMO_PORT": "x"}, "NICA_DEMO_PORT: 'x' is not a whole number"),
        ({"NICA_TEST_HOST": "a host; rm -rf /"}, "NICA_TEST_HOST: 'a host; rm -rf /' is not"),
    ],
)
def test_bad_environment_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError, match="^" + re.escape(message)):
        parse([], {**ENV, **env})


def test_the_command_prints_one_error_line_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.nicabench", "--rounds", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: argument --rounds: 0 is outside 1..10\n", (
        f"one line naming the option, got {result.stderr!r}"
    )
    assert result.stdout == "", "nothing measured, nothing printed"
