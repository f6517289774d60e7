"""Prepared Parquet -> trainer-ready examples, and the checks that stop a run before it wastes a cluster.

The preparation job already rendered, tokenised and length-checked every example, so training never
re-tokenises or re-templates: each row becomes ``input_ids`` plus ``completion_mask`` (0 on prompt
tokens, 1 on the answer and its EOS) and ``labels`` (the ids with -100 on the prompt). Labels are
built here because TRL 1.16 builds them during its own dataset preparation, which we skip
(``skip_prepare_dataset``) so that TRL cannot truncate, re-tokenise or re-template anything.

The driver-side checks (`preflight`, `pin_run`, `check_output_dir`) run before any worker starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from pipeline.config import config_to_dict

log = logging.getLogger(__name__)

RUN_FILE = "complyray_run.json"
# Settings a resumed run must share with the run that wrote its checkpoints; anything else
# (max_steps, eval cadence, patience, failures, outputs) may change between submissions.
PINNED = {
    "model": ["name_or_path", "revision"],
    "lora": ["r", "alpha", "dropout", "target_modules"],
    "quantization": ["load_in_4bit", "quant_type", "double_quant", "compute_dtype"],
    "train": ["learning_rate", "micro_batch_size", "grad_accum", "lr_scheduler", "warmup_ratio", "weight_decay",
              "optim", "seed", "packing", "sampling", "full_finetune", "precision", "deepspeed"],
    "data": ["limit"],
    "ray": ["num_workers"],
}
SPLITS = ("train", "validation")
COLUMNS = ["id", "input_ids", "prompt_tokens", "num_tokens"]


def _fs_path(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))


def split_dir(prepared_dir: str, split: str) -> str:
    """The Hive partition folder of one split."""
    return f"{prepared_dir.rstrip('/')}/split={split}"


def read_manifest(prepared_dir: str) -> dict:
    """The preparation manifest. Raises FileNotFoundError naming data.prepared_dir when it is missing."""
    import pyarrow.fs

    from pipeline.artifacts import MANIFEST_NAME

    fs, path = _fs_path(f"{prepared_dir.rstrip('/')}/{MANIFEST_NAME}")
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        raise FileNotFoundError(f"data.prepared_dir={prepared_dir}: no {MANIFEST_NAME} there (folders prepared "
                                "before it was renamed hold manifest.json: prepare again); run jobs.prepare first "
                                "(python -m jobs.prepare --config jobs/configs/prepare_sample.yaml)")
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


def check_splits(prepared_dir: str) -> None:
    """Raise FileNotFoundError naming data.prepared_dir if the train or validation split is missing or empty."""
    import pyarrow.fs

    missing = []
    for split in SPLITS:
        fs, path = _fs_path(split_dir(prepared_dir, split))
        info = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
        if not any(i.path.endswith(".parquet") for i in info):
            missing.append(f"split={split}")
    if missing:
        raise FileNotFoundError(f"data.prepared_dir={prepared_dir}: missing or empty {', '.join(missing)}; run "
                                "jobs.prepare with data.validation_fraction > 0 (training evaluates every "
                                "train.eval_steps and ranks checkpoints by eval_loss)")


def read_split(prepared_dir: str, split: str, limit: int | None = None, columns: list[str] = COLUMNS):
    """The split's token columns as a pyarrow Table in stable id order, cut to `limit` rows when given."""
    import pyarrow.dataset as pads

    fs, path = _fs_path(split_dir(prepared_dir, split))
    table = pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=columns)
    table = table.sort_by("id")
    return table.slice(0, limit) if limit is not None else table


def check_lengths(table, max_seq_len: int, split: str, prepared_max: int | None = None) -> None:
    """Raise ValueError if any row is longer than train.max_seq_len (training never cuts sequences)."""
    import pyarrow.compute as pc

    longest = pc.max(table["num_tokens"]).as_py() or 0
    if longest > max_seq_len:
        over = pc.sum(pc.greater(table["num_tokens"], max_seq_len)).as_py()
        prepared = f" (prepared with data.max_seq_len={prepared_max})" if prepared_max else ""
        raise ValueError(
            f"{over} {split} example(s) are longer than train.max_seq_len={max_seq_len} (longest {longest} tokens)"
            f"{prepared}; training never truncates silently: raise train.max_seq_len to >= {longest} or re-run "
            f"jobs.prepare with data.max_seq_len={max_seq_len}")


def check_tokenizer(manifest: dict, tokenizer, model_key: str) -> None:
    """Raise ValueError if the data was tokenised by a different tokenizer or chat template than the model's."""
    info = manifest.get("tokenizer", {})
    sha = hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()
    ours = {"bos": tokenizer.bos_token, "eos": tokenizer.eos_token, "pad": tokenizer.pad_token,
            "chat_template_sha256": sha}
    diff = [f"{k}: data {info.get(k)!r} vs model {v!r}" for k, v in ours.items() if k in info and info[k] != v]
    if diff:
        raise ValueError(f"model.name_or_path={model_key} does not match the tokenizer that prepared "
                         f"data.prepared_dir (prepared for {info.get('model')!r}): {'; '.join(diff)}. Re-run jobs.prepare "
                         "with this model.name_or_path or train the model the data was prepared for")


def labels_for(input_ids: list[int], prompt_tokens: int) -> list[int]:
    """Next-token targets: -100 on the prompt, the ids themselves on the answer (its EOS included)."""
    return [-100] * prompt_tokens + list(input_ids[prompt_tokens:])


def to_dataset(table, eos_token_id: int):
    """A `datasets.Dataset` of input_ids, completion_mask, labels and length from a split table.

    Raises ValueError if a row has no answer token or does not end in EOS (the model would never
    learn to stop: a sign of data prepared with another tokenizer).
    """
    import datasets

    ids = table["input_ids"].to_pylist()
    prompt = table["prompt_tokens"].to_pylist()
    bad = [rid for rid, x, p in zip(table["id"].to_pylist(), ids, prompt) if not (0 < p < len(x)) or x[-1] != eos_token_id]
    if bad:
        raise ValueError(f"{len(bad)} example(s) have no answer tokens or do not end in EOS id {eos_token_id} "
                         f"(first: {bad[:3]}); re-run jobs.prepare for this model")
    return datasets.Dataset.from_dict({
        "input_ids": ids,
        "completion_mask": [[0] * p + [1] * (len(x) - p) for x, p in zip(ids, prompt)],
        "labels": [labels_for(x, p) for x, p in zip(ids, prompt)],
        "length": [len(x) for x in ids],
    })


def load_datasets(prepared_dir: str, limit: int | None, eval_limit: int | None, max_seq_len: int,
                  eos_token_id: int):
    """(train, validation) datasets, each checked against `max_seq_len`. Every worker reads the whole
    split; the trainer's distributed sampler hands each worker a disjoint shard of it."""
    out = []
    for split, n in (("train", limit), ("validation", eval_limit)):
        table = read_split(prepared_dir, split, n)
        check_lengths(table, max_seq_len, split)
        out.append(to_dataset(table, eos_token_id))
    return tuple(out)


def preflight(cfg, tokenizer) -> dict:
    """Driver-side checks before any worker starts: the manifest and both splits exist, the tokenizer
    matches, and no example exceeds the training length. Returns the manifest (with the resolved
    ``max_seq_len`` under ``training``). Raises FileNotFoundError / ValueError naming the keys."""
    manifest = read_manifest(cfg.data.prepared_dir)
    check_splits(cfg.data.prepared_dir)
    check_tokenizer(manifest, tokenizer, cfg.model.name_or_path)
    prepared_max = manifest.get("tokenizer", {}).get("max_seq_len")
    max_seq_len = cfg.train.max_seq_len or prepared_max
    if max_seq_len is None:
        raise ValueError("train.max_seq_len is null and the manifest records no data.max_seq_len; set train.max_seq_len")
    import pyarrow.compute as pc

    counts = {}
    for split, n in (("train", cfg.data.limit), ("validation", cfg.data.eval_limit)):
        table = read_split(cfg.data.prepared_dir, split, n, columns=["id", "num_tokens"])
        check_lengths(table, max_seq_len, split, prepared_max)
        counts[split] = {"examples": table.num_rows, "tokens": pc.sum(table["num_tokens"]).as_py() or 0}
    manifest["training"] = {"max_seq_len": max_seq_len, **counts}
    return manifest


def _run_settings(cfg, content_hash: str) -> dict:
    resolved = config_to_dict(cfg)
    pinned = {f"{section}.{key}": resolved[section][key] for section, keys in PINNED.items() for key in keys}
    pinned["data.content_hash"] = content_hash
    return pinned


def pin_run(cfg, content_hash: str, run_dir: str) -> bool:
    """Record the run's resume-relevant settings in ``<run_dir>/complyray_run.json``, or, when the run
    exists, check they match. Returns True when resuming an existing run. Raises ValueError listing
    every changed setting: resuming checkpoints under other settings would silently mix two runs."""
    import pyarrow.fs

    from pipeline.artifacts import write_json

    fs, path = pyarrow.fs.FileSystem.from_uri(f"{run_dir}/{RUN_FILE}")
    ours = _run_settings(cfg, content_hash)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(path) as f:
            theirs = json.loads(f.read().decode())
        changed = [f"{k}: {theirs.get(k)!r} -> {v!r}" for k, v in ours.items() if theirs.get(k) != v]
        if changed:
            raise ValueError(f"ray.run_name={cfg.run_name} in ray.storage_path already holds a run with other "
                             f"settings ({'; '.join(changed)}); choose a new ray.run_name or delete {run_dir}")
        return True
    fs.create_dir(str(Path(path).parent), recursive=True)
    write_json(f"{run_dir}/{RUN_FILE}", ours)
    return False


def check_output_dir(output_dir: str) -> None:
    """Raise ValueError if output_dir is a non-empty local folder that is not an earlier artifact
    (publishing replaces the folder, so it must never be someone's data)."""
    out = Path(output_dir)
    if "://" not in output_dir and out.is_dir() and any(out.iterdir()) and not (out / "training_config.json").exists():
        raise ValueError(f"output_dir={output_dir} holds files that are not a training artifact and would be "
                         "replaced; choose a new or empty folder")
