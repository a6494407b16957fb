"""No secret in what any run of the day-2 stories printed: not the Hugging Face token, not
a model cache key (the inventory's, nor the one rotated to and back from), not an API key
(the inventory's two, nor the read key test_redeploy rotates to), not a TLS private key of
test_tls (deployed, rotated to, refused), not a database role's password. Several of those
runs are -vvv --diff, the most an operator can ask Ansible to print."""

import pytest
from conftest import SECRETS_DIR, key_marker
from runs import RUNS


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    assert len(RUNS) > 20, f"only {len(RUNS)} runs in this session: the day-2 stories did not run"
    return {run.name: run.output for run in RUNS}


def test_some_runs_were_verbose():
    verbose = [run.name for run in RUNS if "-vvv" in run.args]
    assert len(verbose) >= 5, f"expected the -vvv runs of the stories, found {verbose}"


@pytest.mark.parametrize(
    "secret",
    ["token", "cache_key", "rotated_key", "write_api_key", "read_api_key", "rotated_api_key"],
)
def test_no_secret_in_any_run_output(request, outputs, secret):
    if secret.endswith("_api_key") and secret != "rotated_api_key":
        value = request.getfixturevalue("api_keys")[secret.split("_")[0]]
    else:
        value = request.getfixturevalue(secret)
    leaked = sorted(name for name, output in outputs.items() if value in output)
    assert leaked == [], f"the {secret} is in the output of {leaked}"


@pytest.mark.parametrize("name", ["first", "second", "expired", "other"])
def test_no_tls_private_key_in_any_run_output(outputs, tls_pki, name):
    marker = key_marker(tls_pki[name]["key"])
    leaked = sorted(run for run, output in outputs.items() if marker in output)
    assert leaked == [], f"the {name} TLS private key is in the output of {leaked}"


DATABASE_PASSWORDS = ["postgres_password", "database_owner_password", "database_runtime_password"]


@pytest.fixture(scope="module")
def database_passwords(host) -> dict[str, str]:
    """Each database role's password as the host holds it now (test_database_roles made the
    owner's and the runtime's again: the runs from then on are the ones they can be in)."""
    return {
        name: host.file(f"{SECRETS_DIR}/{name}").content_string.strip()
        for name in DATABASE_PASSWORDS
    }


@pytest.mark.parametrize("name", DATABASE_PASSWORDS)
def test_no_database_password_in_any_run_output(outputs, database_passwords, name):
    value = database_passwords[name]
    assert len(value) >= 32, f"{name} is not on the host"
    leaked = sorted(run for run, output in outputs.items() if value in output)
    assert leaked == [], f"the {name} is in the output of {leaked}"
