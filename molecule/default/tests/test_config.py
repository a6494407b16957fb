"""The serving release's stack.env and the secret files, as the containers see them."""

import json

from conftest import APP_UID, POSTGRES_UID, SECRETS_DIR, key_marker, sha256


def test_stack_env_content_and_mode(host, local_vars, token, release):
    stack_env = host.file(f"/opt/nica/releases/{release['release']}/stack.env")
    assert stack_env.mode == 0o640, f"stack.env mode is {oct(stack_env.mode)}, expected 0o640"
    assert stack_env.user == "root"
    lines = stack_env.content_string.splitlines()
    repos = ",".join(local_vars["backend_hf_model_repos"])
    for expected in (
        f"HF_MODEL_REPOS={repos}",
        "HF_REVISION=main",
        "DATABASE_URL=postgresql+psycopg://app_runtime@postgres:5432/app",
        "RUN_DB_MIGRATIONS=0",
    ):
        assert expected in lines, f"stack.env lacks {expected!r}"
    assert token not in stack_env.content_string, "stack.env must not hold the token"


def test_token_secret_file_is_0400_and_owned_by_appuser(host):
    secret = host.file(f"{SECRETS_DIR}/huggingface_token")
    assert secret.mode == 0o400, f"token file mode is {oct(secret.mode)}, expected 0o400"
    assert secret.uid == APP_UID, f"token file owner is {secret.uid}, expected {APP_UID}"


def test_token_is_readable_inside_the_backend(sh, token, serving):
    inside = sh(f"docker exec {serving} cat /run/secrets/huggingface_token")
    assert sha256(inside) == sha256(token), "the backend reads a different token"
    mode = sh(f"docker exec {serving} stat -c %a /run/secrets/huggingface_token").strip()
    assert mode == "400"


def test_database_password_files_are_0400_for_their_readers(host):
    for name, uid in (("postgres_password", POSTGRES_UID), ("database_password", APP_UID)):
        secret = host.file(f"{SECRETS_DIR}/{name}")
        assert secret.mode == 0o400, f"{name} mode is {oct(secret.mode)}, expected 0o400"
        assert secret.uid == uid, f"{name} owner is {secret.uid}, expected {uid}"


def test_no_container_has_a_secret_in_its_inspect_output(
    host, sh, token, api_keys, rotated_api_key, tls_pki
):
    password = host.file(f"{SECRETS_DIR}/postgres_password").content_string
    keys = [*api_keys.values(), rotated_api_key]
    # test_tls's TLS private keys (the proxy mounts the serving one's directory)
    tls_keys = {name: key_marker(pair["key"]) for name, pair in tls_pki.items() if "key" in pair}
    for container in sh("docker ps -aq").split():
        inspect = json.loads(sh(f"docker inspect {container}"))[0]
        name = inspect["Name"]
        assert token not in json.dumps(inspect), f"the token is in `docker inspect {name}`"
        assert password not in json.dumps(inspect), f"the DB password is in `docker inspect {name}`"
        assert not [k for k in keys if k in json.dumps(inspect)], (
            f"an API key is in `docker inspect {name}`"
        )
        for key_name, marker in tls_keys.items():
            assert marker not in json.dumps(inspect), (
                f"the {key_name} TLS key is in `docker inspect {name}`"
            )


def test_api_keys_file_is_0400_owned_by_appuser_and_holds_only_hashes(host, local_vars):
    secret = host.file(f"{SECRETS_DIR}/api_keys")
    assert secret.mode == 0o400, f"api_keys mode is {oct(secret.mode)}, expected 0o400"
    assert secret.uid == APP_UID, f"api_keys owner is {secret.uid}, expected {APP_UID}"
    expected = [
        {"name": k["name"], "scope": k["scope"], "sha256": sha256(k["key"])}
        for k in local_vars["backend_api_keys"]
    ]
    assert json.loads(secret.content_string) == expected, (
        "secrets/api_keys does not hold the inventory's names, scopes and key hashes"
    )


def test_the_serving_release_reads_the_api_keys_file(sh, release, serving):
    lines = sh(f"cat /opt/nica/releases/{release['release']}/stack.env").splitlines()
    assert "API_KEYS_FILE=/run/secrets/api_keys" in lines, "stack.env does not set API_KEYS_FILE"
    mode = sh(f"docker exec {serving} stat -c %a /run/secrets/api_keys").strip()
    assert mode == "400", f"/run/secrets/api_keys in the backend has mode {mode}"
