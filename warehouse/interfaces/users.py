"""Who may read through `wh serve` and `wh api`, and with which role.

`[serve.users]` maps a name to a password (clear text or a SCRAM verifier; role analyst) or
to a table `{ password = "...", role = "analyst" | "steward" }`. `[serve] user`/`password`
(or WH_SERVE_USER/WH_SERVE_PASSWORD) add one more user, with `[serve] role`. Without any
user, loopback clients are let in without a password with `[serve] role` (default analyst):
an analyst sees personal-data columns pseudonymised, a steward in clear (README "Privacy").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from warehouse.config import Settings
from warehouse.errors import ConfigError
from warehouse.runtime.catalog import ANALYST, ROLES


@dataclass(frozen=True)
class Users:
    passwords: dict[str, str]  # name -> clear password or SCRAM verifier
    roles: dict[str, str]  # name -> role
    default_role: str = ANALYST  # for a client let in without a password (no users)

    def role_of(self, user: str) -> str:
        return self.roles.get(user, self.default_role)


def serve_table(settings: Settings) -> dict[str, Any]:
    table = settings.extra.get("serve", {})
    if not isinstance(table, dict):
        raise ConfigError("[serve] must be a table", settings.project_dir / "wh.toml")
    return table


def _role(value: object, where: str, config: Any) -> str:
    role = str(value)
    if role not in ROLES:
        raise ConfigError(
            f"{where}: unknown role '{role}'", config, hint=f"roles: {', '.join(ROLES)}"
        )
    return role


def load_users(settings: Settings) -> Users:
    table = serve_table(settings)
    config = settings.project_dir / "wh.toml"
    raw = table.get("users", {})
    if not isinstance(raw, dict):
        raise ConfigError("[serve.users] must be a table", config)
    passwords: dict[str, str] = {}
    roles: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            passwords[str(name)], roles[str(name)] = value, ANALYST
        elif isinstance(value, dict) and isinstance(value.get("password"), str):
            unknown = sorted(set(value) - {"password", "role"})
            if unknown:
                raise ConfigError(
                    f"[serve.users] {name}: unknown key '{unknown[0]}'", config,
                    hint="a user has a password and a role",
                )  # fmt: skip
            passwords[str(name)] = value["password"]
            roles[str(name)] = _role(value.get("role", ANALYST), f"[serve.users] {name}", config)
        else:
            raise ConfigError(
                f"[serve.users] {name} must be a password or {{ password, role }}", config,
                hint='e.g. [serve.users] ana = { password = "SCRAM-SHA-256$4096:...", '
                'role = "analyst" }',
            )  # fmt: skip
    default_role = _role(
        os.environ.get("WH_SERVE_ROLE") or table.get("role", ANALYST), "[serve] role", config
    )
    user = os.environ.get("WH_SERVE_USER") or str(table.get("user", "wh"))
    password = os.environ.get("WH_SERVE_PASSWORD") or table.get("password")
    if password is not None:
        passwords[user] = str(password)
        roles[user] = default_role
    return Users(passwords, roles, default_role)
