"""The preparation job on a real local Ray: accounting, rejects, leakage, determinism, policies."""

import copy
import gzip
import json
import random

import pyarrow.dataset as pads
import pytest

from conftest import item, write_jsonl
from pipeline.config import load_config
from pipeline.prepare.config import PrepareConfig
from pipeline.prepare.run import run_prepare

TOPICS = ["Guarantees Against Loss", "Promissory Claims", "Churning", "Selling Away"]


def words(rng: random.Random, n: int) -> str:
    vocab = ["account", "bond", "yield", "client", "review", "market", "fee", "transfer", "quarter", "policy"]
    return " ".join(rng.choice(vocab) + str(rng.randint(0, 999)) for _ in range(n))


def long_item(i: int, evidence_first: bool) -> dict:
    it = item(i, topic="Churning")
    filler = words(random.Random(i), 1500)
    for v in ("compliant_version", "non_compliant_version"):
        quote = it[v]["evidence_list"][0]
        it[v]["scenario"] = f"{quote}\n{filler}" if evidence_first else f"{filler}\n{quote}"
    return it


@pytest.fixture(scope="module")
def salted(tmp_path_factory):
    """Input folder with valid pairs and every kind of bad line; returns (folder, expected reject counts)."""
    d = tmp_path_factory.mktemp("salted")
    good = [item(i, topic=TOPICS[i % 4]) for i in range(40)]
    good.append(item(900, topic="Lone Topic"))  # a stratum of one pair
    good += [item(901, topic="Pair Topic"), item(902, topic="Pair Topic")]
    exact = copy.deepcopy(good[0])  # a whole pair repeated: two exact duplicates
    near = copy.deepcopy(good[1])
    near["non_compliant_version"]["scenario"] = near["non_compliant_version"]["scenario"].upper().replace("?", " ?!")
    near["non_compliant_version"]["evidence_list"] = [near["non_compliant_version"]["evidence_list"][0].upper()]
    near["compliant_version"]["scenario"] += "\nClient: Thanks, talk soon."  # unique: must follow item 1's split
    bad_versions = []
    for field, value in [("final_verdict", "MAYBE"), ("severity", "NONE"), ("evidence_list", ["not in the text"]),
                         ("scenario", "")]:
        it = item(500 + len(bad_versions))
        it["non_compliant_version"][field] = value
        bad_versions.append(it)
    lines = good + [exact, near] + bad_versions + [
        "{broken json", "", "[1, 2, 3]", {"source": "SEC"}, long_item(700, evidence_first=True),
        long_item(701, evidence_first=False)]
    write_jsonl(d / "finra.jsonl", lines)
    with open(d / "finra.jsonl", "ab") as f:
        f.write(b'{"source": "\xff\xfe"}\n')
    rng = random.Random(0)
    gz_items = [dict(item(300 + i), note=words(rng, 200)) for i in range(12)]
    (d / "sec.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in gz_items).encode()))
    cut = gzip.compress("".join(json.dumps(x) + "\n" for x in
                                [dict(item(400 + i), note=words(rng, 400)) for i in range(12)]).encode())
    (d / "internal.jsonl.gz").write_bytes(cut[: len(cut) * 2 // 3])
    (d / "empty.jsonl").write_bytes(b"")
    with open(d / "huge.jsonl", "wb") as f:
        f.write(json.dumps(item(800)).encode() + b"\n")
        f.write(b'{"scenario": "' + b"x" * (50 << 20) + b'"}\n')
    expected = {"duplicate_exact": 2, "duplicate_near": 1, "unknown_enum": 1, "inconsistent_labels": 1,
                "evidence_not_in_scenario": 1, "empty_field": 1, "invalid_json": 1, "blank_line": 1,
                "not_an_object": 1, "no_versions": 1, "not_utf8": 1, "too_long": 4, "line_too_large": 1,
                "empty_file": 1, "truncated_gzip": 1}
    return d, expected


def prepare(folder, out, model, *overrides):
    cfg = load_config(PrepareConfig, None, [f"data.paths=[{folder}]", f"data.output_dir={out}",
                                            f"model.name_or_path={model}", "data.max_seq_len=768", *overrides])
    return run_prepare(cfg).manifest


def read_split(out, split):
    return pads.dataset(f"{out}/split={split}", format="parquet").to_table().to_pandas()


@pytest.fixture(scope="module")
def prepared(salted, tiny_mistral, ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    return out, prepare(salted[0], out, tiny_mistral)


def test_counts_reconcile_and_every_reason_is_named(salted, prepared):
    out, manifest = prepared
    c = manifest["counts"]
    assert c["accepted"] + c["rejected"] == c["records_read"]
    assert manifest["rejects_by_reason"] == salted[1]
    rejects = [json.loads(line) for line in open(f"{out}/_rejects.jsonl")]
    assert len(rejects) == c["rejected"] and all(r["file"] and r["reason"] for r in rejects)
    written = sum(len(read_split(out, s)) for s in ("train", "validation", "test", "rejected"))
    assert written == c["records_read"]
    files = manifest["files"]
    assert files["empty.jsonl"]["file_errors"] == ["empty_file"]
    assert files["internal.jsonl.gz"]["file_errors"] == ["truncated_gzip"]
    assert files["internal.jsonl.gz"]["accepted"] >= 2  # lines before the cut survive
    assert files["sec.jsonl.gz"]["accepted"] == 24 and files["huge.jsonl"]["accepted"] == 2


def test_no_pair_or_duplicate_straddles_splits(prepared):
    out, manifest = prepared
    kept = [read_split(out, s).assign(split=s) for s in ("train", "validation", "test")]
    import pandas as pd

    kept = pd.concat(kept)
    assert (kept.groupby("item_id")["split"].nunique() == 1).all()
    # The near-duplicate's unique compliant version follows its original pair (finra.jsonl:2).
    near_line = 45
    near = kept[kept["item_id"] == f"finra.jsonl:{near_line}"]
    orig = kept[kept["item_id"] == "finra.jsonl:2"]
    assert len(near) == 1 and set(near["split"]) == set(orig["split"])
    assert sum(s["records"] for s in manifest["splits"].values()) == manifest["counts"]["accepted"]


def test_small_strata_do_not_crash_and_land_somewhere(prepared):
    out, manifest = prepared
    topics = {t for s in manifest["splits"].values() for t in s["topic"]}
    assert {"Lone Topic", "Pair Topic"} <= topics
    assert "Lone Topic" in manifest["splits"]["train"]["topic"]


def test_written_examples_are_trainable(prepared, tiny_mistral):
    from transformers import AutoTokenizer

    out, manifest = prepared
    tok = AutoTokenizer.from_pretrained(tiny_mistral)
    train = read_split(out, "train")
    assert len(train) > 40
    for row in train.head(20).itertuples():
        ids = list(row.input_ids)
        assert ids.count(tok.bos_token_id) == 1 and ids[-1] == tok.eos_token_id
        assert tok(row.prompt, add_special_tokens=False)["input_ids"] == ids[:row.prompt_tokens]
        assert json.loads(row.answer)["final_verdict"] == row.final_verdict
        assert row.num_tokens == len(ids) <= 768
    stats = manifest["splits"]["train"]["tokens"]
    assert 0 < stats["p50"] <= stats["p95"] <= stats["max"] <= 768
    assert manifest["tokenizer"]["system_role"] == "user"


def test_deterministic_for_seed(salted, prepared, tiny_mistral, tmp_path):
    again = prepare(salted[0], tmp_path / "again", tiny_mistral)
    assert again["content_hash"] == prepared[1]["content_hash"]
    other = prepare(salted[0], tmp_path / "other", tiny_mistral, "data.seed=7")
    assert other["content_hash"] != prepared[1]["content_hash"]
    assert other["counts"] == prepared[1]["counts"]


def test_truncate_policy_keeps_evidence_or_rejects(salted, tiny_mistral, ray_session, tmp_path):
    manifest = prepare(salted[0], tmp_path, tiny_mistral, "data.overlong=truncate")
    assert manifest["counts"]["truncated"] == 2  # evidence at the start survives the cut
    assert manifest["rejects_by_reason"]["evidence_truncated"] == 2  # evidence at the end does not
    assert "too_long" not in manifest["rejects_by_reason"]
    rows = pd_concat(tmp_path)
    cut = rows[rows["truncated"]]
    assert len(cut) == 2 and (cut["num_tokens"] <= 768).all() and (cut["original_tokens"] > 768).all()


def pd_concat(out):
    import pandas as pd

    return pd.concat(read_split(out, s) for s in ("train", "validation", "test"))


def test_missing_input_is_a_clear_error(tiny_mistral, ray_session, tmp_path):
    with pytest.raises(Exception, match="data.paths: nothing found at .*nowhere"):
        prepare(tmp_path / "nowhere", tmp_path / "o", tiny_mistral)


def test_bundled_sample_passes_validation_end_to_end(tiny_mistral, ray_session, tmp_path):
    """The generator's output (the bundled sample) is accepted whole by the real job."""
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "data" / "sample"
    manifest = prepare(sample, tmp_path, tiny_mistral, "data.max_seq_len=4096")
    assert manifest["counts"]["rejected"] == 0 and manifest["counts"]["accepted"] == 720
    assert len(manifest["splits"]["test"]["topic"]) >= 15


def tree(root):
    """{relative path: bytes} of every file under `root` (symlinks and folders by name)."""
    from pathlib import Path

    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def modes(root):
    """The permission bits of `root`, its folders and its files, as sets."""
    import os
    import stat
    from pathlib import Path

    entries = [Path(root), *Path(root).rglob("*")]
    dirs = {stat.S_IMODE(os.stat(p).st_mode) for p in entries if p.is_dir()}
    files = {stat.S_IMODE(os.stat(p).st_mode) for p in entries if p.is_file()}
    return dirs, files


def run_job(*argv):
    from jobs.common import job_main
    from jobs.prepare import run

    return job_main(PrepareConfig, run, None, list(argv))


def test_hostile_lines_and_files_become_named_rejects(tiny_mistral, ray_session, tmp_path):
    """Deep nesting, a lone surrogate, an unopenable file and dangling links: named rejects, the rest intact."""
    import os

    import pyarrow.parquet as pq

    d = tmp_path / "in"
    write_jsonl(d / "good.jsonl", [item(i) for i in range(6)] + ["[" * 100_000 + "]" * 100_000])
    with open(d / "good.jsonl", "a") as f:  # a valid pair whose scenario holds a lone surrogate escape
        f.write(json.dumps(item(50)).replace("Harbor 50 fund", "Harbor \\ud800 fund") + "\n")
    locked = write_jsonl(d / "locked.jsonl", [item(60)])
    os.chmod(locked, 0)
    os.symlink(tmp_path / "nowhere.jsonl", d / "dangling.jsonl")
    os.symlink("loop.jsonl", d / "loop.jsonl")
    out = tmp_path / "out"
    try:
        assert run_job(f"data.paths=[{d}]", f"data.output_dir={out}", f"model.name_or_path={tiny_mistral}",
                       "data.max_seq_len=768") == 0
    finally:
        os.chmod(locked, 0o600)
    manifest = json.loads((out / "_manifest.json").read_text())
    c, by_reason = manifest["counts"], manifest["rejects_by_reason"]
    root = os.geteuid() == 0  # root opens a 0000 file anyway: its pair is then read and accepted
    assert by_reason == {"nested_too_deep": 1, "lone_surrogate": 1, "dangling_symlink": 2,
                         **({} if root else {"unreadable_file": 1})}
    assert c["accepted"] == 12 + (2 if root else 0) and c["accepted"] + c["rejected"] == c["records_read"]
    rejects = {(r["file"].rsplit("/", 1)[-1], r["line"], r["reason"]) for r in
               map(json.loads, open(out / "_rejects.jsonl"))}
    assert {("good.jsonl", 7, "nested_too_deep"), ("good.jsonl", 8, "lone_surrogate"),
            ("dangling.jsonl", 0, "dangling_symlink"), ("loop.jsonl", 0, "dangling_symlink")} <= rejects
    assert root or ("locked.jsonl", 0, "unreadable_file") in rejects
    assert manifest["files"]["dangling.jsonl"]["file_errors"] == ["dangling_symlink"]
    # The prepared folder reads as one Parquet dataset; outputs are private (files 0600, folders 0700).
    assert pq.read_table(out).num_rows == c["records_read"]
    assert modes(out) == ({0o700}, {0o600})


def test_unopenable_file_is_a_reject_row_not_a_failed_read(ray_session, tmp_path):
    """A file listed but gone (or forbidden) when read: one unreadable_file row, other files read whole.
    Deleting after the listing fails the open for root too, unlike chmod."""
    import ray.data

    from pipeline.reader import JsonLinesSource

    write_jsonl(tmp_path / "a.jsonl", ["{}", "{}"])
    gone = write_jsonl(tmp_path / "b.jsonl", ["{}"])
    source = JsonLinesSource([str(tmp_path)], max_line_bytes=1024)
    gone.unlink()
    rows = ray.data.read_datasource(source).take_all()
    events = [(r["path"].rsplit("/", 1)[-1], r["line"], r["error"]) for r in rows]
    assert sorted(events) == [("a.jsonl", 1, ""), ("a.jsonl", 2, ""), ("b.jsonl", 0, "unreadable_file")]
    assert "FileNotFoundError" in next(r["detail"] for r in rows if r["error"])


def test_failed_run_leaves_previous_output_and_rerun_replaces_it(tiny_mistral, ray_session, tmp_path, monkeypatch):
    """Relative paths (resolved on the driver), a failing run after a good one, then a smaller rerun."""
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "in" / "a.jsonl", [item(i) for i in range(10)])
    write_jsonl(tmp_path / "small" / "b.jsonl", [item(i) for i in range(4)])
    common = [f"model.name_or_path={tiny_mistral}", "data.max_seq_len=768", "data.output_dir=out"]
    assert run_job("data.paths=[in]", *common) == 0
    before = tree(tmp_path / "out")
    assert {"_manifest.json", "_rejects.jsonl"} <= set(before) and len(before) > 4
    # The same file twice fails in the split plan, after pass 1 wrote its staging data.
    assert run_job("data.paths=[in/a.jsonl, in/a.jsonl]", *common) == 1
    assert tree(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "small"]  # no staging folder left
    assert run_job("data.paths=[small]", *common, "data.output_access=all") == 0
    assert pq.read_table(tmp_path / "out").num_rows == 8  # replaced, not appended to the 20 of the first run
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["counts"]["accepted"] == 8
    assert modes(tmp_path / "out") == ({0o755}, {0o644})
