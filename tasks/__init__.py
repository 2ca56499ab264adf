"""Prefect tasks: thin wrappers that give each pipeline step retries, logs and UI artifacts.

Every module holds plain step functions (testable without Prefect) and, at the bottom, the
task that wraps them. No task caches through Prefect: each step is idempotent against the
run folder and the warehouse, which outlive Prefect's result store (checkpoints for
training, prompt ids already in `generations` for generation, delete-then-insert for scores).
"""
