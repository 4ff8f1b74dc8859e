"""Apache Superset against `wh serve`, as an analyst sets it up: add the database, test the
connection, list schemas and tables, create a dataset, run a SQL Lab query, and fetch chart
data with a time-range filter, all through Superset's REST API (Flask's test client, no web
server). Runs in Superset's own environment (`just compat`); prints one JSON line per step.

Usage: python probe.py <wh serve port> <work dir>
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PORT, WORK = int(sys.argv[1]), Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
CONFIG = WORK / "superset_config.py"
CONFIG.write_text(
    f"SECRET_KEY = 'wh-compat-probe-secret-key-0123456789'\n"
    f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{WORK / 'superset.db'}'\n"
    "WTF_CSRF_ENABLED = False\n"
    "FEATURE_FLAGS = {}\n"
    "PREVENT_UNSAFE_DB_CONNECTIONS = False\n"
)
os.environ["SUPERSET_CONFIG_PATH"] = str(CONFIG)
os.environ.setdefault("FLASK_APP", "superset")
BIN = Path(sys.executable).parent
for args in (
    ["db", "upgrade"],
    ["fab", "create-admin", "--username", "admin", "--password", "admin",
     "--firstname", "a", "--lastname", "b", "--email", "admin@example.com"],
    ["init"],
):  # fmt: skip
    done = subprocess.run([str(BIN / "superset"), *args], capture_output=True, text=True)
    if done.returncode != 0:
        print(json.dumps({"step": "setup " + args[0], "ok": False, "error": done.stderr[-2000:]}))
        sys.exit(1)

from superset.app import create_app  # noqa: E402  (after the config path is set)

app = create_app()
client = app.test_client()
results: list[dict[str, Any]] = []


def step(name: str, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    response = client.open(url, method=method, json=body, headers=HEADERS)
    ok = response.status_code < 300
    payload = response.get_json(silent=True)
    results.append({"step": name, "ok": ok, "status": response.status_code})
    print(json.dumps({"step": name, "ok": ok, "status": response.status_code,
                      "answer": str(payload)[:600]}), flush=True)  # fmt: skip
    return payload


HEADERS: dict[str, str] = {}
login = step(
    "login", "POST", "/api/v1/security/login",
    {"username": "admin", "password": "admin", "provider": "db", "refresh": True},
)  # fmt: skip
HEADERS["Authorization"] = f"Bearer {login['access_token']}"
uri = f"postgresql+psycopg2://wh@127.0.0.1:{PORT}/prod"
step("test connection", "POST", "/api/v1/database/test_connection/",
     {"database_name": "wh", "sqlalchemy_uri": uri})  # fmt: skip
new_database = {"database_name": "wh", "sqlalchemy_uri": uri, "expose_in_sqllab": True}
database = step("add database", "POST", "/api/v1/database/", new_database)
db_id = database["id"]
schemas = step("schemas", "GET", f"/api/v1/database/{db_id}/schemas/")
tables = step("tables", "GET", f"/api/v1/database/{db_id}/tables/?q=(schema_name:forecast)")
new_dataset = {"database": db_id, "schema": "forecast", "table_name": "demand_forecast"}
dataset = step("create dataset", "POST", "/api/v1/dataset/", new_dataset)
sql = step("sql lab", "POST", "/api/v1/sqllab/execute/",
           {"database_id": db_id, "sql": "select count(*) as n from forecast.demand_forecast",
            "runAsync": False, "schema": "forecast"})  # fmt: skip
chart = step(
    "chart data with a time range", "POST", "/api/v1/chart/data",
    {"datasource": {"id": dataset["id"], "type": "table"},
     "queries": [{"columns": [], "metrics": [{"expressionType": "SQL",
                  "sqlExpression": "SUM(units_p50)", "label": "units"}],
                  "filters": [{"col": "forecast_date", "op": "TEMPORAL_RANGE",
                               "val": "2000-01-01 : 2100-01-01"}],
                  "granularity": "forecast_date", "time_range": "2000-01-01 : 2100-01-01"}],
     "result_format": "json", "result_type": "full"},
)  # fmt: skip
checks = {
    "schemas list forecast": "forecast" in (schemas or {}).get("result", []),
    "catalogs are not DuckDB's": not {"system", "temp"} & set((schemas or {}).get("result", [])),
    "tables list demand_forecast": any(
        t.get("value") == "demand_forecast" for t in (tables or {}).get("result", [])
    ),
    "sql lab counted rows": bool((sql or {}).get("data")),
    "chart returned data": bool(((chart or {}).get("result") or [{}])[0].get("data")),
}
print(json.dumps({"step": "checks", "ok": all(checks.values()), **checks}), flush=True)
sys.exit(0 if all(r["ok"] for r in results) and all(checks.values()) else 1)
