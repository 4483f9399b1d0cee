"""Write the dashboards as Grafana JSON, byte for byte the same on every run.

The files are committed (``dashboards/generated/``), mounted into Grafana by the
docker-compose deployment, and compared with a fresh generation in the tests, so a
change to a builder that is not regenerated fails CI.
"""

from __future__ import annotations

import json
from pathlib import Path

from dashboards import build_dashboards
from dashboards.model import Dashboard

GENERATED_DIR = Path(__file__).resolve().parent / "generated"


def render(dashboard: Dashboard) -> str:
    """The dashboard's JSON text: 2-space indent, UTF-8 as is, newline at the end."""
    return json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n"


def generate(out_dir: Path = GENERATED_DIR) -> list[Path]:
    """Write ``<uid>.json`` per dashboard and remove stale ``*.json`` files in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in build_dashboards():
        path = out_dir / f"{dashboard.uid}.json"
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    for stale in set(out_dir.glob("*.json")) - set(written):
        stale.unlink()
    return written
