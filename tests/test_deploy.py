"""Deployment files: compose.yaml, Dockerfile, .env.example and .gitignore, checked by parsing (no Docker engine)."""

from __future__ import annotations

import fnmatch
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from ava_bot.settings import Settings
from tests.reliability.processes import AS_DEPLOYED

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker")
PROXY = "caddy"
MEDIA_PATH = "/app/data/media"


@cache
def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    services = _compose()["services"]
    assert name in services, f"compose.yaml has no service {name!r}"
    service = services[name]
    assert isinstance(service, dict)
    return service


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Map dependency -> condition (the short list form means `service_started`)."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _volumes(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each mount, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            mounts.append((source, target, "ro" in "".join(mode).split(",")))
        else:
            mounts.append((volume.get("source", ""), volume["target"], bool(volume.get("read_only", False))))
    return mounts


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck", {})
    return bool(check.get("test")) and not check.get("disable", False)


def _published_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["published"]))
        else:
            spec = str(port).split("/")[0]
            ports.add(int(spec.split(":")[-2] if ":" in spec else spec))
    return ports


def _env_example_keys() -> set[str]:
    """Keys set (`KEY=`) or shown commented out (`# KEY=`) in .env.example."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def _dockerfile_stages() -> list[list[str]]:
    """Dockerfile instructions (continuations joined, comments dropped) grouped by stage."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
    stages: list[list[str]] = []
    for instruction in (i.strip() for i in instructions if i.strip()):
        if instruction.upper().startswith("FROM "):
            stages.append([])
        assert stages, "Dockerfile instruction before the first FROM"
        stages[-1].append(instruction)
    return stages


def test_compose_defines_app_services_and_tls_proxy() -> None:
    """compose.yaml runs migrate, web, worker, PostgreSQL, Redis and a TLS reverse proxy with the Caddyfile."""
    for name in ("migrate", "web", "worker", "postgres", "redis", PROXY):
        _service(name)
    proxy = _service(PROXY)
    assert proxy["image"].startswith("caddy:")
    assert any(target == "/etc/caddy/Caddyfile" and ro for _, target, ro in _volumes(proxy))
    caddyfile = (ROOT / "Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy web:8080" in caddyfile
    assert "Strict-Transport-Security" in caddyfile


def test_app_services_share_one_image_and_commands() -> None:
    """migrate, web and worker are built from this repository and run the matching `ava-bot` command."""
    for name, command in (("migrate", "migrate"), ("web", "serve"), ("worker", "worker")):
        service = _service(name)
        assert service["build"] == "."
        assert service["command"] == ["ava-bot", command]
    assert len({_service(name)["image"] for name in ("migrate", *APP_SERVICES)}) == 1


def test_migrate_is_one_shot_and_gates_web_and_worker() -> None:
    """migrate runs once after PostgreSQL and Redis are healthy; web and worker wait for it to succeed."""
    migrate = _service("migrate")
    assert migrate["restart"] == "no"
    assert _depends_on(migrate) == {"postgres": "service_healthy", "redis": "service_healthy"}
    for name in APP_SERVICES:
        deps = _depends_on(_service(name))
        assert deps["migrate"] == "service_completed_successfully"
        assert deps["postgres"] == "service_healthy"
        assert deps["redis"] == "service_healthy"


def test_app_services_point_at_compose_backends_in_production() -> None:
    """App services run with production rules against the compose PostgreSQL and Redis."""
    for name in ("migrate", *APP_SERVICES):
        env = _environment(_service(name))
        assert env["AVA_ENV"] == "production"
        assert re.match(r"postgres(ql)?://[^@]+:\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432/", env["DATABASE_URL"])
        assert env["REDIS_URL"].startswith("redis://redis:6379")


def test_postgres_has_volume_and_healthcheck() -> None:
    """PostgreSQL keeps its data in a named volume, reports health with pg_isready and restarts."""
    postgres = _service("postgres")
    assert any(
        target == "/var/lib/postgresql/data" and source in _compose()["volumes"]
        for source, target, _ in _volumes(postgres)
    )
    assert _has_healthcheck(postgres)
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["restart"] in {"always", "unless-stopped"}
    assert "POSTGRES_PASSWORD" in _environment(postgres)


def test_redis_has_append_only_persistence_volume_and_healthcheck() -> None:
    """Redis persists with an append-only file on a named volume, reports health with ping and restarts."""
    redis = _service("redis")
    command = redis["command"] if isinstance(redis["command"], str) else " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert any(target == "/data" and source in _compose()["volumes"] for source, target, _ in _volumes(redis))
    assert _has_healthcheck(redis)
    assert "ping" in redis["healthcheck"]["test"]
    assert redis["restart"] in {"always", "unless-stopped"}


def test_web_and_worker_read_env_file_and_restart() -> None:
    """web and worker load `.env` and are restarted unless stopped; web reports health on /health."""
    for name in APP_SERVICES:
        service = _service(name)
        env_file = service["env_file"]
        assert env_file == ".env" or ".env" in env_file
        assert service["restart"] in {"always", "unless-stopped"}
    assert _has_healthcheck(_service("web"))
    assert "/health" in " ".join(_service("web")["healthcheck"]["test"])


def _seconds(duration: str) -> float:
    """A compose duration such as "30s", "1m30s" or "1m" in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_stop_grace_period_covers_the_shutdown_drain() -> None:
    """web and worker get more time between SIGTERM and SIGKILL than the code's drain (SHUTDOWN_GRACE_SECONDS)."""
    drain = Settings.model_fields["shutdown_grace_seconds"].default
    for name in APP_SERVICES:
        grace = _service(name).get("stop_grace_period")
        assert grace is not None, f"{name} has no stop_grace_period (compose's default 10 s cuts the drain short)"
        assert _seconds(str(grace)) >= drain + 5, f"{name}: stop_grace_period {grace} leaves no margin over {drain} s"


def test_only_proxy_publishes_http_ports() -> None:
    """Only the TLS proxy publishes ports (80 and 443); the app, PostgreSQL and Redis stay internal."""
    for name, service in _compose()["services"].items():
        if name == PROXY:
            assert _published_ports(service) == {80, 443}
        else:
            assert not service.get("ports"), f"{name} publishes ports to the host"


def test_web_and_worker_share_media_volume_and_read_only_certs() -> None:
    """web and worker mount the same named media volume and the C2PA certificates read-only."""
    sources = set()
    for name in APP_SERVICES:
        mounts = _volumes(_service(name))
        media = [source for source, target, _ in mounts if target == MEDIA_PATH]
        assert len(media) == 1, f"{name} does not mount the media volume at {MEDIA_PATH}"
        sources.add(media[0])
        assert any(target == "/app/certs" and ro for _, target, ro in mounts)
        assert _environment(_service(name))["MEDIA_DIR"] == MEDIA_PATH
    assert len(sources) == 1
    assert sources.pop() in _compose()["volumes"]


def test_web_and_worker_replicas_are_set_from_env() -> None:
    """web and worker scale with `deploy.replicas` from WEB_REPLICAS / WORKER_REPLICAS (default 1)."""
    for name, variable in (("web", "WEB_REPLICAS"), ("worker", "WORKER_REPLICAS")):
        assert _service(name)["deploy"]["replicas"] == f"${{{variable}:-1}}"
        assert "container_name" not in _service(name)  # a fixed name allows one container only


def test_s3_profile_runs_minio_and_creates_the_bucket_before_the_app() -> None:
    """The optional `s3` profile runs MinIO with the app's S3 keys and a one-shot bucket creation that web and
    worker wait for (only when the profile is on: `required: false`)."""
    minio, init = _service("minio"), _service("minio-init")
    assert minio["profiles"] == ["s3"] and init["profiles"] == ["s3"]
    assert _environment(minio) == {
        "MINIO_ROOT_USER": "${S3_ACCESS_KEY_ID:-}",
        "MINIO_ROOT_PASSWORD": "${S3_SECRET_ACCESS_KEY:-}",
    }
    assert any(target == "/data" and source in _compose()["volumes"] for source, target, _ in _volumes(minio))
    assert _depends_on(init) == {"minio": "service_healthy"}
    assert init["restart"] == "no"
    script = " ".join(init["command"])
    assert 'mc mb --ignore-existing "ava/$$S3_BUCKET"' in script
    assert "$$S3_SECRET_ACCESS_KEY" in script  # from the environment at run time, never written into the file
    for name in APP_SERVICES:
        spec = _service(name)["depends_on"]["minio-init"]
        assert spec == {"condition": "service_completed_successfully", "required": False}


def test_dockerfile_is_multistage_and_runs_as_non_root() -> None:
    """The Dockerfile has a builder and a runtime stage, and the runtime stage runs as a non-root user."""
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    users = [i.split(None, 1)[1].split(":")[0] for i in final if i.upper().startswith("USER ")]
    assert users, "final stage never switches USER"
    assert users[-1] not in {"root", "0"}
    assert any(i.upper().startswith("HEALTHCHECK ") and "/health" in i for i in final)
    assert any(i.upper().startswith("EXPOSE ") and "8080" in i for i in final)
    assert final[-1] == 'CMD ["ava-bot", "serve"]'
    assert any("uv sync --locked --no-dev" in i for stage in stages[:-1] for i in stage)


def test_processes_run_optimized_with_their_bytecode_built_in_the_image() -> None:
    """The runtime stage runs every process as the tests and benchmarks run theirs (`AS_DEPLOYED`: two malloc
    arenas, a fixed mmap threshold, PYTHONOPTIMIZE=2), and the builder compiles the `.opt-2.pyc` files that level
    reads (the runtime cannot write them); compose does not override either."""
    stages = _dockerfile_stages()
    env_lines = [shlex.split(i)[1:] for i in stages[-1] if i.upper().startswith("ENV ")]
    runtime_env = dict(pair.split("=", 1) for line in env_lines for pair in line)
    assert {name: runtime_env.get(name) for name in AS_DEPLOYED} == AS_DEPLOYED
    assert "PYTHONDONTWRITEBYTECODE" in runtime_env
    builds = [i for stage in stages[:-1] for i in stage if i.upper().startswith("RUN ")]
    assert any("python -OO -m compileall" in i and "/app/.venv/" in i for i in builds)
    sync = next(n for n, i in enumerate(builds) if "--no-editable" in i and "--no-install-project" not in i)
    assert any("-OO -m compileall" in i for i in builds[sync + 1 :]), "compiled before the project was installed"
    for name in APP_SERVICES:
        assert not set(AS_DEPLOYED) & set(_environment(_service(name)))


def test_env_example_documents_every_setting() -> None:
    """.env.example lists every `Settings` field (upper-cased) plus the compose-only keys."""
    keys = _env_example_keys()
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in keys)
    assert not missing, f".env.example does not document: {', '.join(missing)}"
    assert {"POSTGRES_PASSWORD", "AVA_DOMAIN"} <= keys


def test_env_example_is_valid_and_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings load from .env.example as-is, and every secret in it is empty."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            assert value.get_secret_value() == "", f"{name.upper()} has a value in .env.example"
    production = settings.model_copy(update={"ava_env": "production"})
    assert {"SECRET_KEY", "LLM_API_KEY", "STRIPE_SECRET_KEY"} <= set(production.missing_production_settings())


def test_gitignore_ignores_env() -> None:
    """.gitignore keeps `.env` (real secrets) out of git."""
    patterns = [line.strip() for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()]
    assert any(
        fnmatch.fnmatch(".env", pattern.lstrip("/")) for pattern in patterns if pattern and pattern[0] not in "#!"
    )
