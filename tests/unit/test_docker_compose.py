"""docker-compose.yml is valid YAML and matches what the README tells users to export.
(No Docker engine runs on our machines, so the file itself is checked, not started.)"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_consistent_with_the_readme() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["postgres"]
    assert service["image"].startswith("pgvector/pgvector:")
    env = service["environment"]
    assert service["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "pg_isready" in service["healthcheck"]["test"][1]
    volume = service["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert service["ports"] == ["127.0.0.1:5432:5432"]
    password = env["POSTGRES_PASSWORD"].split(":-")[-1].rstrip("}")
    dsn = f"postgresql://{env['POSTGRES_USER']}:{password}@localhost:5432/{env['POSTGRES_DB']}"
    assert dsn in (ROOT / "README.md").read_text()
    assert dsn in (ROOT / "docker-compose.yml").read_text()
