"""The serving release's stack.env and the secret files, as the containers see them."""

import json

from conftest import APP_UID, POSTGRES_UID, SECRETS_DIR, sha256


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


def test_no_container_has_a_secret_in_its_inspect_output(host, sh, token):
    password = host.file(f"{SECRETS_DIR}/postgres_password").content_string
    for container in sh("docker ps -aq").split():
        inspect = json.loads(sh(f"docker inspect {container}"))[0]
        name = inspect["Name"]
        assert token not in json.dumps(inspect), f"the token is in `docker inspect {name}`"
        assert password not in json.dumps(inspect), f"the DB password is in `docker inspect {name}`"
