"""Prepare stage: raw JSON Lines -> validated, deduplicated, formatted and split Parquet + manifest (jobs/prepare.py)."""
