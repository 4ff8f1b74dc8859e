"""Session settings (Postgres GUCs) a client reads and sets: SET/RESET/SHOW are answered
here and never reach DuckDB, and the ones clients track are reported as ParameterStatus."""

from __future__ import annotations

from warehouse.interfaces.serve import wire

SERVER_VERSION = "15.0"
# settings a client tracks: reported at startup and whenever SET changes them
REPORTED = frozenset(
    {
        "application_name",
        "client_encoding",
        "datestyle",
        "intervalstyle",
        "timezone",
        "standard_conforming_strings",
    }
)
REPORTED_AT_STARTUP = REPORTED | {"integer_datetimes", "is_superuser", "session_authorization"}
DISPLAY_NAMES = {"datestyle": "DateStyle", "intervalstyle": "IntervalStyle", "timezone": "TimeZone"}
# what a client may set in its startup packet
FROM_STARTUP = frozenset({"application_name", "datestyle", "timezone", "intervalstyle"})


def default_settings(user: str) -> dict[str, str]:
    return {
        "server_version": SERVER_VERSION,
        "server_version_num": "150000",
        "server_encoding": "UTF8",
        "client_encoding": "UTF8",
        "datestyle": "ISO, MDY",
        "intervalstyle": "postgres",
        "timezone": "UTC",
        "integer_datetimes": "on",
        "standard_conforming_strings": "on",
        "is_superuser": "off",
        "session_authorization": user,
        "application_name": "",
        "transaction_isolation": "repeatable read",
        "default_transaction_isolation": "repeatable read",
        "transaction_read_only": "on",
        "default_transaction_read_only": "on",
        "search_path": '"$user", public',
        "max_identifier_length": "63",
        "lc_collate": "C",
        "lc_ctype": "C",
        "default_table_access_method": "heap",
        # limits drivers read from pg_settings (pgjdbc's getImportedKeys needs this one)
        "max_index_keys": "32",
    }


class SessionSettings:
    def __init__(self, user: str = "", startup: dict[str, str] | None = None) -> None:
        self.user = user
        self.values = default_settings(user)
        for name, value in (startup or {}).items():
            if name.lower() in FROM_STARTUP:
                self.values[name.lower()] = value

    def startup_messages(self) -> list[bytes]:
        """ParameterStatus for everything a client expects to hear at startup."""
        return [
            wire.parameter_status(DISPLAY_NAMES.get(name, name), value)
            for name, value in sorted(self.values.items())
            if name in REPORTED_AT_STARTUP or name.startswith("server_")
        ]

    def set(self, name: str, value: str) -> list[bytes]:
        """SET name = value; the ParameterStatus to send if clients track it."""
        self.values[name] = value
        if name in REPORTED:
            return [wire.parameter_status(DISPLAY_NAMES.get(name, name), value)]
        return []

    def reset(self, name: str) -> None:
        defaults = default_settings(self.user)
        if name == "all":
            self.values = defaults
        elif name in defaults:
            self.values[name] = defaults[name]

    def get(self, name: str) -> str | None:
        return self.values.get(name)
