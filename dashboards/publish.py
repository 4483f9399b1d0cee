"""Publish the committed dashboards to an existing Grafana through its HTTP API.

For a Grafana that is not provisioned from files (the docker-compose deployment is:
see deploy/grafana/provisioning). Uses grafana-client, the maintained fork of
grafana-api; it is an optional dependency (``pip install 'lineloss[grafana]'``).

What it does, all idempotent:

1. makes sure the folder exists (uid ``lineloss`` by default);
2. optionally creates or updates the InfluxDB datasource with the uid the
   dashboards default to (``lineloss-influxdb``), when an InfluxDB URL is given;
3. uploads every ``dashboards/generated/*.json`` with ``overwrite: true``, so a
   re-publish replaces the previous version (Grafana keeps the history).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.generate import GENERATED_DIR
from dashboards.model import DATASOURCE_NAME, DATASOURCE_UID

INSTALL_HINT = "grafana-client is missing: pip install 'lineloss[grafana]'"


@dataclass(frozen=True)
class InfluxDatasource:
    """The InfluxDB (InfluxQL) datasource Grafana should query."""

    url: str
    database: str
    token: str | None = None  # 2.x/3.x v1 compatibility: sent as "Authorization: Token ..."
    user: str | None = None
    password: str | None = None

    def payload(self) -> dict[str, Any]:
        json_data: dict[str, Any] = {
            "dbName": self.database,
            "httpMode": "GET",
            "version": "InfluxQL",
        }
        secure: dict[str, str] = {}
        if self.token:
            json_data["httpHeaderName1"] = "Authorization"
            secure["httpHeaderValue1"] = f"Token {self.token}"
        out: dict[str, Any] = {
            "uid": DATASOURCE_UID,
            "name": DATASOURCE_NAME,
            "type": "influxdb",
            "access": "proxy",
            "url": self.url,
            "jsonData": json_data,
            "secureJsonData": secure,
        }
        if self.user:
            out["user"] = self.user
            secure["password"] = self.password or ""
        return out


@dataclass(frozen=True)
class Published:
    folder_uid: str
    dashboards: list[tuple[str, str]]  # (uid, url in Grafana)
    datasource_uid: str | None


def publish(
    grafana_url: str,
    *,
    token: str | None,
    folder_uid: str = "lineloss",
    folder_title: str = "Line loss",
    datasource: InfluxDatasource | None = None,
    dashboards_dir: Path = GENERATED_DIR,
    timeout_s: float = 10.0,
) -> Published:
    """Upload the dashboards to the Grafana at ``grafana_url`` (token = service-account token).

    ``grafana_url`` may carry user and password (``http://admin:secret@host:3000``)
    instead of a token.
    """
    try:
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaClientError
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(INSTALL_HINT) from exc

    api = GrafanaApi.from_url(grafana_url, credential=token, timeout=timeout_s)
    try:
        api.folder.get_folder(folder_uid)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(folder_title, uid=folder_uid)

    datasource_uid = None
    if datasource is not None:
        payload = datasource.payload()
        try:
            api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.datasource.create_datasource(payload)
        else:
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, payload)
        datasource_uid = DATASOURCE_UID

    published = []
    for path in sorted(dashboards_dir.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        answer = api.dashboard.update_dashboard(
            {
                "dashboard": {**model, "id": None},
                "folderUid": folder_uid,
                "overwrite": True,
                "message": "lineloss dashboards publish",
            }
        )
        published.append((model["uid"], str((answer or {}).get("url", ""))))
    return Published(folder_uid, published, datasource_uid)
