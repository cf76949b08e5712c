"""The deployment files, checked by reading them (no container engine runs here)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rebalancer.cli.app import app
from rebalancer.daemon import EXIT_STOPPED_BY_ERROR

ROOT = Path(__file__).resolve().parents[1]
SECRET_WORDS = re.compile(r"(?i)(api_?key|secret|password|passphrase|token|notify_urls)")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a continuation"
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def unit() -> dict[str, list[tuple[str, str]]]:
    """Sections of the systemd unit -> (key, value) pairs in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in (ROOT / "deploy" / "rebalancer.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"a setting before any section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            for part in shlex.split(args):
                key, _, value = part.partition("=")
                env[key] = value
    return env


def test_dockerfile_base_user_volume_entrypoint() -> None:
    ins = dockerfile()
    words = [w for w, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    users = [a for w, a in ins if w == "USER"]
    assert users, "no USER: the container would run as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    volumes = [json.loads(a) for w, a in ins if w == "VOLUME"]
    assert ["/data"] in volumes
    entry = [json.loads(a) for w, a in ins if w == "ENTRYPOINT"]
    assert entry == [["rebalancer", "run"]]  # exec form: SIGTERM reaches the daemon
    env = env_of(ins)
    assert env["XDG_DATA_HOME"] == "/data"  # state_dir "" -> /data/rebalancer on the volume
    assert env["REBALANCER_CONFIG"].startswith("/config/")


def test_dockerfile_health_check_runs_the_health_module() -> None:
    checks = [a for w, a in dockerfile() if w == "HEALTHCHECK"]
    assert len(checks) == 1
    cmd = json.loads(checks[0].split("CMD", 1)[1])
    assert cmd == ["python", "-m", "rebalancer.daemon.health"]


def test_dockerfile_bakes_no_secrets_in() -> None:
    ins = dockerfile()
    for word, args in ins:
        if word in ("ENV", "ARG"):
            assert not SECRET_WORDS.search(args), f"{word} {args}: pass secrets at run time"
        if word in ("COPY", "ADD"):
            assert ".env" not in shlex.split(args), f"{word} {args} copies the keys"
            assert not re.search(r"\.sqlite|\bstate\b", args), f"{word} {args} copies state"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and "*.sqlite" in ignored


def test_the_images_entrypoint_is_a_real_command() -> None:
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_systemd_unit_restarts_runs_unprivileged_and_reads_an_env_file() -> None:
    u = unit()
    svc = u["Service"]
    assert values(svc, "Restart") in (["on-failure"], ["always"])
    user = values(svc, "User")
    assert user and user[0] not in ("root", "0")
    env_files = values(svc, "EnvironmentFile")
    assert env_files and env_files[0].startswith("/etc/")
    exec_start = values(svc, "ExecStart")
    assert len(exec_start) == 1 and exec_start[0].endswith("rebalancer run")
    assert "--live" not in exec_start[0]  # live is a decision, not a default
    # an error that needs the user stops it for good; the daemon's exit code matches
    prevent = values(svc, "RestartPreventExitStatus")[0].split()
    assert str(EXIT_STOPPED_BY_ERROR) in prevent
    assert values(svc, "KillSignal") == ["SIGTERM"]
    assert int(values(svc, "TimeoutStopSec")[0]) >= 30
    assert not any(SECRET_WORDS.search(v) for k, v in svc if k == "Environment")
    assert u["Install"] == [("WantedBy", "multi-user.target")]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
    ],
)
def test_systemd_unit_hardening(key: str, value: str) -> None:
    assert values(unit()["Service"], key) == [value]


def test_state_is_writable_under_protect_system_strict() -> None:
    svc = unit()["Service"]
    writable = values(svc, "ReadWritePaths")[0].split()
    data_home = next(
        v.split("=", 1)[1] for v in values(svc, "Environment") if v.startswith("XDG_DATA_HOME=")
    )
    assert any(data_home.startswith(p) for p in writable)
    assert values(svc, "StateDirectory") == ["rebalancer"]


def test_deployment_doc_covers_the_safety_points() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    for needle in (
        "trade-only",
        "withdrawals",
        "IP whitelist",
        "paper",
        "circuit breaker",
        "backup",
        "REBALANCER_NOTIFY_URLS",
        "deploy/rebalancer.service",
        "docker run",
        "rebalancer resume",
        "--live",
    ):
        assert needle.lower() in doc.lower(), needle
