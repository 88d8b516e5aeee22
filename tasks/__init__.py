"""Prefect tasks: one per pipeline stage (installed as `infimmr.tasks`)."""
