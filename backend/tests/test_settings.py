"""Settings.from_env: valid configuration, and one clear line naming the bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.settings import ConfigError, Settings, Tracing

BASE_URL = "postgresql+psycopg://app@postgres:5432/app"


def settings_from(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": BASE_URL, **env})


def test_defaults() -> None:
    settings = settings_from()
    assert settings.hf_home == Path("/var/huggingface"), (
        "HF_HOME should default to /var/huggingface"
    )
    assert settings.models == (), "no model should be configured by default"


def test_metrics_are_off_and_warm_up_on_by_default(tmp_path: Path) -> None:
    assert (settings_from().metrics_dir, settings_from().warmup) == (None, True)
    chosen = settings_from(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), WARMUP_BEFORE_READY="0")
    assert (chosen.metrics_dir, chosen.warmup) == (tmp_path, False)


def test_password_file_content_becomes_the_url_password(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("s3cr3t-value\n")
    settings = settings_from(DATABASE_PASSWORD_FILE=str(password_file))
    assert settings.database_url.password == "s3cr3t-value", "the stripped file content"


def test_password_never_rendered(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("s3cr3t-value")
    settings = settings_from(DATABASE_PASSWORD_FILE=str(password_file))
    shown = [settings.database_url_safe, str(settings.database_url), repr(settings)]
    assert all("s3cr3t-value" not in text for text in shown), f"password leaked in {shown}"
    assert settings.database_url_safe == "postgresql+psycopg://app:***@postgres:5432/app"


def test_plain_postgresql_scheme_uses_psycopg() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://app@db/app"})
    assert settings.database_url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://app@db/app"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+psycopg://app@db"}, "DATABASE_URL"),
        ({"DATABASE_PASSWORD_FILE": "/nonexistent/pw"}, "DATABASE_PASSWORD_FILE"),
        ({"HF_HOME": "relative/dir"}, "HF_HOME"),
        ({"HF_MODEL_REPOS": "just-a-name"}, "HF_MODEL_REPOS"),
        ({"HF_REVISION": "bad rev"}, "HF_REVISION"),
        ({"EMBEDDINGS_MAX_INPUTS": "0"}, "EMBEDDINGS_MAX_INPUTS"),
        ({"EMBEDDINGS_MAX_INPUTS": "-3"}, "EMBEDDINGS_MAX_INPUTS"),
        ({"EMBEDDINGS_MAX_INPUTS": "many"}, "EMBEDDINGS_MAX_INPUTS"),
        ({"EMBEDDINGS_BATCH_WAIT_MS": "-1"}, "EMBEDDINGS_BATCH_WAIT_MS"),
        ({"EMBEDDINGS_BATCH_WAIT_MS": "2.5"}, "EMBEDDINGS_BATCH_WAIT_MS"),
        ({"EMBEDDINGS_MAX_BATCH_TOKENS": "0"}, "EMBEDDINGS_MAX_BATCH_TOKENS"),
        ({"MAX_REQUEST_BODY_BYTES": "4m"}, "MAX_REQUEST_BODY_BYTES"),
        ({"SEARCH_EF_SEARCH": "0"}, "SEARCH_EF_SEARCH"),
        ({"SEARCH_EF_SEARCH": "1001"}, "SEARCH_EF_SEARCH"),
        ({"SEARCH_EF_SEARCH": "lots"}, "SEARCH_EF_SEARCH"),
        ({"UVICORN_WORKERS": "0"}, "UVICORN_WORKERS"),
        ({"PROMETHEUS_MULTIPROC_DIR": "relative/dir"}, "PROMETHEUS_MULTIPROC_DIR"),
        ({"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"}, "PROMETHEUS_MULTIPROC_DIR"),
        ({"WARMUP_BEFORE_READY": "yes"}, "WARMUP_BEFORE_READY"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": BASE_URL, **env})
    message = str(caught.value)
    assert variable in message, f"the error should name {variable}, got: {message}"
    assert "\n" not in message, f"the error should be one line, got: {message!r}"


def test_password_in_url_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": "postgresql+psycopg://app:hunter2@db/app"})
    assert "DATABASE_PASSWORD_FILE" in str(caught.value), "should say where the password goes"
    assert "hunter2" not in str(caught.value), "the password must not be echoed"


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("\n")
    with pytest.raises(ConfigError, match=r"DATABASE_PASSWORD_FILE.*is empty"):
        settings_from(DATABASE_PASSWORD_FILE=str(password_file))


def test_embeddings_max_inputs_defaults_to_64() -> None:
    assert settings_from().embeddings_max_inputs == 64


def test_embeddings_max_inputs_is_read_from_the_environment() -> None:
    assert settings_from(EMBEDDINGS_MAX_INPUTS="8").embeddings_max_inputs == 8


def test_embeddings_max_input_chars_defaults_to_20000() -> None:
    assert settings_from().embeddings_max_input_chars == 20000


def test_embeddings_max_input_chars_is_read_from_the_environment() -> None:
    assert settings_from(EMBEDDINGS_MAX_INPUT_CHARS=" 500 ").embeddings_max_input_chars == 500


@pytest.mark.parametrize("value", ["0", "-5", "many", "1e4"])
def test_embeddings_max_input_chars_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(EMBEDDINGS_MAX_INPUT_CHARS=value)
    assert str(caught.value) == (
        f"EMBEDDINGS_MAX_INPUT_CHARS must be a positive whole number, got {value!r}"
    )


# ---- tracing (OTLP/HTTP)


def test_tracing_is_off_without_an_otlp_endpoint() -> None:
    assert settings_from(OTEL_SERVICE_NAME="svc").tracing is None


def test_tracing_sends_to_the_endpoints_traces_path() -> None:
    tracing = settings_from(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://otel:4318/", OTEL_SERVICE_NAME="svc"
    ).tracing
    assert tracing == Tracing(traces_url="http://otel:4318/v1/traces", service_name="svc")


def test_tracing_traces_endpoint_is_used_as_is() -> None:
    tracing = settings_from(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://otel:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://other:9999/traces",
    ).tracing
    assert tracing is not None and tracing.traces_url == "http://other:9999/traces"


def test_tracing_service_name_defaults_to_the_backends_name() -> None:
    tracing = settings_from(OTEL_EXPORTER_OTLP_ENDPOINT="http://otel:4318").tracing
    assert tracing is not None and tracing.service_name == "nica-pro-backend"


def test_tracing_endpoint_must_be_an_http_url() -> None:
    with pytest.raises(ConfigError, match=r"^OTEL_EXPORTER_OTLP_ENDPOINT must be an http"):
        settings_from(OTEL_EXPORTER_OTLP_ENDPOINT="otel:4318")


def test_batching_and_body_limit_defaults() -> None:
    settings = Settings.from_env({"DATABASE_URL": BASE_URL})
    assert (
        settings.embeddings_batch_wait_ms,
        settings.embeddings_max_batch_tokens,
        settings.max_request_body_bytes,
    ) == (2, 8192, 4 * 1024 * 1024)


def test_batch_wait_may_be_zero() -> None:
    settings = Settings.from_env({"DATABASE_URL": BASE_URL, "EMBEDDINGS_BATCH_WAIT_MS": "0"})
    assert settings.embeddings_batch_wait_ms == 0


def test_search_ef_search_defaults_to_the_measured_value() -> None:
    assert settings_from().search_ef_search == 400, "the value docs/benchmarks.md measured"


def test_search_ef_search_is_read_from_the_environment() -> None:
    assert settings_from(SEARCH_EF_SEARCH="1000").search_ef_search == 1000


# ---- HF_ONNX_FILES: which ONNX file each model runs on

MODELS = "sentence-transformers/all-MiniLM-L6-v2, BAAI/bge-small-en-v1.5, nica/private-minilm"


def onnx_files(value: str) -> dict[str, str | None]:
    settings = settings_from(HF_MODEL_REPOS=MODELS, HF_ONNX_FILES=value)
    return {spec.repo_id: settings.onnx_files.for_repo(spec.repo_id) for spec in settings.models}


def test_every_model_runs_on_onnx_model_onnx_by_default() -> None:
    assert set(onnx_files("").values()) == {"onnx/model.onnx"}


def test_onnx_files_name_a_file_per_model_and_for_the_others() -> None:
    assert onnx_files(
        " BAAI/bge-small-en-v1.5=onnx/model_qint8_avx512.onnx, nica/private-minilm=none,"
        " *=onnx/model_O2.onnx "
    ) == {
        "sentence-transformers/all-MiniLM-L6-v2": "onnx/model_O2.onnx",
        "BAAI/bge-small-en-v1.5": "onnx/model_qint8_avx512.onnx",
        "nica/private-minilm": None,
    }


def test_star_none_runs_every_other_model_on_the_numpy_bert() -> None:
    assert onnx_files("*=none, nica/private-minilm=model.onnx") == {
        "sentence-transformers/all-MiniLM-L6-v2": None,
        "BAAI/bge-small-en-v1.5": None,
        "nica/private-minilm": "model.onnx",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "onnx/model.onnx",
            "HF_ONNX_FILES: entry 'onnx/model.onnx' is not of the form org/name=FILE or *=FILE",
        ),
        (
            "not a repo=onnx/model.onnx",
            "HF_ONNX_FILES: entry 'not a repo=onnx/model.onnx' is not of the form org/name=FILE "
            "or *=FILE",
        ),
        (
            "*=../model.onnx",
            "HF_ONNX_FILES: entry '*=../model.onnx': '../model.onnx' is not a path in the repo "
            "ending in .onnx (e.g. onnx/model.onnx) nor 'none'",
        ),
        (
            "*=/onnx/model.onnx",
            "HF_ONNX_FILES: entry '*=/onnx/model.onnx': '/onnx/model.onnx' is not a path in the "
            "repo ending in .onnx (e.g. onnx/model.onnx) nor 'none'",
        ),
        (
            "*=model.safetensors",
            "HF_ONNX_FILES: entry '*=model.safetensors': 'model.safetensors' is not a path in "
            "the repo ending in .onnx (e.g. onnx/model.onnx) nor 'none'",
        ),
        (
            "*=onnx/.hidden.onnx",
            "HF_ONNX_FILES: entry '*=onnx/.hidden.onnx': 'onnx/.hidden.onnx' is not a path in "
            "the repo ending in .onnx (e.g. onnx/model.onnx) nor 'none'",
        ),
        (
            "*=",
            "HF_ONNX_FILES: entry '*=': '' is not a path in the repo ending in .onnx "
            "(e.g. onnx/model.onnx) nor 'none'",
        ),
        (
            "*=none, *=onnx/model.onnx",
            "HF_ONNX_FILES: entry '*=onnx/model.onnx' repeats *",
        ),
        (
            "org/typo=onnx/model.onnx",
            "HF_ONNX_FILES names org/typo, which HF_MODEL_REPOS does not list",
        ),
    ],
)
def test_a_bad_onnx_files_entry_is_one_line_naming_it(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(HF_MODEL_REPOS=MODELS, HF_ONNX_FILES=value)
    assert str(caught.value) == expected
