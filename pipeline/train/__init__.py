"""Train stage: prepared Parquet -> LoRA/QLoRA/full fine-tune with TRL inside Ray Train -> artifact folder (jobs/train.py)."""
