"""Evaluate stage: a split through the engine as a Ray Data job -> predictions, metrics, audits, report (jobs/evaluate.py)."""
