"""Prefect flows and the `infimmr` CLI (installed as `infimmr.flows`)."""
