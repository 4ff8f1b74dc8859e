"""Read-only Postgres wire endpoint (`wh serve`) over the published catalog."""
