"""Score stage: triage an archive of communications, explain the flagged ones (jobs/score.py)."""
