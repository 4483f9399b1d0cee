"""The committed dashboard JSON is exactly what the builders generate."""

from __future__ import annotations

import json
from pathlib import Path

from dashboards import build_dashboards
from dashboards.generate import GENERATED_DIR, generate, render


def test_regenerating_gives_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    written = generate(tmp_path)
    committed = sorted(p.name for p in GENERATED_DIR.glob("*.json"))
    assert sorted(p.name for p in written) == committed, (
        "dashboards/generated is out of date: run `lineloss dashboards generate`"
    )
    for path in written:
        assert path.read_bytes() == (GENERATED_DIR / path.name).read_bytes(), (
            f"{path.name} differs from the builders: run `lineloss dashboards generate`"
        )


def test_generation_is_deterministic() -> None:
    assert [render(d) for d in build_dashboards()] == [render(d) for d in build_dashboards()]


def test_generate_removes_stale_files(tmp_path: Path) -> None:
    (tmp_path / "old-dashboard.json").write_text("{}")
    generate(tmp_path)
    assert not (tmp_path / "old-dashboard.json").exists()


def test_dashboards_have_unique_uids_ids_and_a_sane_layout() -> None:
    dashboards = [d.to_json() for d in build_dashboards()]
    assert [d["uid"] for d in dashboards] == [
        "lineloss-overview",
        "lineloss-area",
        "lineloss-suspects",
        "lineloss-health",
    ]
    for d in dashboards:
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for p in d["panels"]:
            pos = p["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
            assert p["description"], p["title"]
            for t in p.get("targets", []):
                assert t["rawQuery"] is True and "$timeFilter" in t["query"], p["title"]
        json.dumps(d)  # serialisable


def test_area_variable_is_single_valued_so_grafana_regex_escapes_it() -> None:
    """Grafana regex-escapes a single-value variable substituted into =~ /^$area$/."""
    area = next(d for d in build_dashboards() if d.uid == "lineloss-area").to_json()
    [var] = [v for v in area["templating"]["list"] if v["name"] == "area"]
    assert (var["multi"], var["includeAll"]) == (False, False)
    for panel in area["panels"]:
        for t in panel.get("targets", []):
            assert '"area" =~ /^$area$/' in t["query"]
