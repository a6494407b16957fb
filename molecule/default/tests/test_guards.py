"""The roles refuse bad input before they touch anything (each case a real
`deploy.yml -vvv --tags <its role's>` run):
- roles/model_cache pointed at an image file that holds a swap signature, or data without
  any signature, must fail naming what it found and leave the file as it was;
- a missing or malformed key must fail preflight saying how to make one, and a well-formed
  key that is not the cache's must stop the role naming the protectors;
- the backend roles given a plain hf-cache volume (from before the encrypted cache) must
  stop naming its options and the way out (as a dry run);
- the backend roles given a bad repo id, port, token or API key must fail preflight naming
  the variable, print no token or key, and leave the serving release as it was;
- a whole deploy.yml that would publish the API open on a public address (inventory/local's
  0.0.0.0 without its API keys) must stop naming the variables before it changes the host.
"""

import base64
import os
from typing import Any

import pytest
import yaml
from runs import FULL_PATH_TASK, Run, deploy, inspect, serving, sh, vars_file

GUARD_DIR = "/var/lib/nica-guard"
WRONG_KEY = base64.b64encode(os.urandom(32)).decode()  # well-formed, protects nothing
BAD_TOKEN = "hf_guardToken with a space"
SHORT_API_KEY = "nica-guard-short-key-6e1f"  # 25 characters: too short to be guessed offline
CASES: dict[str, dict[str, Any]] = {
    "swap": {
        "vars": {
            "model_cache_image_file": f"{GUARD_DIR}/swap.img",
            "model_cache_mount_point": "/srv/guard-swap",
        }
    },
    "data": {
        "vars": {
            "model_cache_image_file": f"{GUARD_DIR}/data.img",
            "model_cache_mount_point": "/srv/guard-data",
        }
    },
    "missing-key": {"vars": {"model_cache_key": ""}},
    "malformed-key": {"vars": {"model_cache_key": "not-32-bytes-of-base64"}},
    "wrong-key": {"vars": {"model_cache_key": WRONG_KEY}},
    # A plain hf-cache volume left from before the encrypted cache (here under another
    # name, as a dry run: the real volume is in use).
    "plain-volume": {
        "tags": "backend_config",
        "check": True,
        "vars": {"backend_hf_cache_volume": "nica-guard-plain"},
    },
    "bad-repos": {
        "tags": "backend_preflight",
        "vars": {
            "backend_hf_model_repos": ["sentence-transformers/all-MiniLM-L6-v2", "not a repo id"]
        },
    },
    "bad-port": {"tags": "backend_preflight", "vars": {"backend_publish_port": 70000}},
    "bad-token": {"tags": "backend_preflight", "vars": {"backend_huggingface_token": BAD_TOKEN}},
    "short-api-key": {
        "tags": "backend_preflight",
        "vars": {"backend_api_keys": [{"name": "short", "scope": "write", "key": SHORT_API_KEY}]},
    },
    # No tags: the whole deploy, which must stop before its first change to the host.
    "open-publish": {"tags": "", "vars": {"backend_api_keys": []}},
}


def checksums(host: Any) -> dict[str, str]:
    return {name: host.file(f"{GUARD_DIR}/{name}.img").sha256sum for name in ("swap", "data")}


@pytest.fixture(scope="module")
def guards(host: Any) -> dict[str, Any]:
    sh(host, "docker volume create nica-guard-plain")
    # Test fixtures: a file with a swap signature, and one with data but no signature.
    sh(
        host,
        f"mkdir -p -m 0700 {GUARD_DIR} && cd {GUARD_DIR}"
        " && truncate --size=16M swap.img && mkswap swap.img >/dev/null"
        " && head --bytes=16M /dev/urandom > data.img",
    )
    before, serving_before = checksums(host), inspect(host, serving(host))
    runs: dict[str, Run] = {}
    for name, case in CASES.items():
        variables = vars_file(f"guard-{name}", case["vars"])
        tags = case.get("tags", "model_cache")
        args = ["-vvv", *(["--tags", tags] if tags else []), "-e", variables]
        runs[name] = deploy(f"guard-{name}", *args, *(["--check"] if case.get("check") else []))
    serving_after = inspect(host, serving(host))
    leftovers = sh(
        host, "ls -d /etc/systemd/system/srv-guard* /srv/guard-* 2>/dev/null || true"
    ).split()
    plain = inspect_volume(host, "nica-guard-plain")
    done = {
        "runs": runs,
        "before": before,
        "after": checksums(host),
        "leftovers": leftovers,
        "serving": [[c["Id"], c["State"]["StartedAt"]] for c in (serving_before, serving_after)],
        "plain_volume": plain,
    }
    sh(host, f"docker volume rm nica-guard-plain && rm -rf {GUARD_DIR}")
    return done


def inspect_volume(host: Any, name: str) -> dict[str, Any]:
    result = host.run(f"docker volume inspect -f '{{{{json .Options}}}}' {name}")
    return {
        "exists": result.rc == 0,
        "options": yaml.safe_load(result.stdout) if result.rc == 0 else None,
    }


def said(run: Run) -> str:
    return " ".join(run.output.split())


def errors(run: Run) -> list[str]:
    """The run's one-line failure reasons (ansible-core prints them as `[ERROR]: ...`)."""
    return [line for line in run.output.splitlines() if line.startswith("[ERROR]:")]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "bad-repos",
            "backend_hf_model_repos: \"not a repo id\" is not 'org/name' or 'org/name@revision'",
        ),
        ("bad-port", "backend_publish_port must be a port number, 1-65535; got 70000."),
        ("bad-token", "backend_huggingface_token must be a single token with no spaces"),
        ("short-api-key", "backend_api_keys: entry 0 (short): key must be at least 32 characters"),
        (
            "open-publish",
            "backend_publish_address 0.0.0.0 is not loopback and neither backend_api_keys nor"
            " backend_tls_certificate is set",
        ),
    ],
)
def test_bad_backend_input_fails_naming_the_variable(guards, case, message):
    run = guards["runs"][case]
    assert run.rc != 0, f"the backend roles accepted the {case} input"
    assert any(message in line for line in errors(run)), f"expected {message!r} in: {errors(run)}"


def test_bad_token_is_not_printed(guards):
    output = guards["runs"]["bad-token"].output
    assert BAD_TOKEN not in output, "the refused token appears in the -vvv output"
    assert BAD_TOKEN.split()[0] not in output, (
        "part of the refused token appears in the -vvv output"
    )


def test_refused_api_key_is_not_printed(guards):
    assert SHORT_API_KEY not in guards["runs"]["short-api-key"].output, (
        "the refused API key appears in the -vvv output"
    )


def test_an_open_api_on_a_public_address_is_refused_before_the_host_changes(guards):
    run = guards["runs"]["open-publish"]
    assert run.rc != 0, "deploy.yml published the API open on 0.0.0.0"
    assert not run.ran(FULL_PATH_TASK), (
        "the refused deploy reached the Docker engine's role: it checked the settings too late"
    )
    assert "backend_allow_insecure_publish" in said(run), "the refusal does not name the opt-in"


def test_refused_runs_left_the_serving_release_alone(guards):
    before, after = guards["serving"]
    assert after == before, "a refused run replaced or restarted the serving container"


@pytest.mark.parametrize(
    ("case", "found"),
    [("swap", "it holds a swap signature"), ("data", "it holds data (its first MiB is not zeros)")],
)
def test_refuses_to_format_a_file_that_holds_something(guards, case, found):
    run = guards["runs"][case]
    assert run.rc != 0, f"the role did not fail on the {case} file"
    failures = [line for line in run.output.splitlines() if "Refusing to format" in line]
    assert failures, f"the {case} run did not refuse to format"
    assert found in failures[-1], f"the failure does not say {found!r}: {failures[-1]}"


@pytest.mark.parametrize("case", ["swap", "data"])
def test_refused_file_is_unchanged(guards, case):
    assert guards["after"][case] == guards["before"][case], f"the {case} file was modified"


def test_refused_runs_left_no_mount_unit_or_mount_point(guards):
    assert guards["leftovers"] == [], f"left behind: {guards['leftovers']}"


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("missing-key", "model_cache_key is not set"),
        ("malformed-key", "model_cache_key is malformed"),
    ],
)
def test_bad_key_fails_preflight_saying_how_to_make_one(guards, case, problem):
    run = guards["runs"][case]
    assert run.rc != 0, f"the role accepted a {case}"
    log = run.output
    assert problem in log, f"the failure does not say {problem!r}"
    assert "head -c 32 /dev/urandom | base64" in log, "the failure does not say how to make a key"


def test_a_key_the_cache_is_not_protected_with_stops_the_role(guards):
    run = guards["runs"]["wrong-key"]
    assert run.rc != 0, "the role accepted a key that protects nothing"
    text = said(run)
    assert (
        "is protected by nica-model-cache-" in text
        and "none of which wraps model_cache_key." in text
    ), f"the failure does not name the protectors and model_cache_key: {errors(run)}"
    assert 'docs/model-cache.md, "Losing the key"' in text, "the failure does not point to the docs"


def test_the_wrong_key_is_not_printed(guards):
    assert WRONG_KEY not in guards["runs"]["wrong-key"].output, (
        "the wrong key is in the -vvv output"
    )


def test_a_plain_hf_cache_volume_is_refused_naming_the_way_out(guards):
    run = guards["runs"]["plain-volume"]
    assert run.rc != 0, "the backend roles accepted a plain hf-cache volume"
    text = said(run)
    assert "The Docker volume nica-guard-plain exists with options {}, not" in text, errors(run)
    assert 'docs/model-cache.md, "Moving an existing model cache onto the encrypted volume"' in text


def test_the_plain_volume_was_left_as_it_was(guards):
    volume = guards["plain_volume"]
    assert volume["exists"] and not volume["options"], f"the plain volume was changed: {volume}"
