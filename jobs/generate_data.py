"""python -m jobs.generate_data --out data/sample --pairs 360 --seed 7

Write synthetic advisor-communication pairs (see `pipeline.synth`) as JSON Lines, one file per
source so the output looks like the real inputs: ``sec_synthetic.jsonl``, ``finra_synthetic.jsonl``
and ``internal_mutated.jsonl``. ``--shards K`` splits the index range into K parts, each written as
its own set of files (``finra_synthetic-00001-of-00004.jsonl``); ``--workers`` writes shards in
parallel processes. Item i depends only on (seed, i), so any sharding yields the same items.
A file is created only when its source receives at least one item (the reader rejects empty files).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline.synth import SOURCE_FILES, generate_items, open_output, to_line


def shard_range(pairs: int, shards: int, shard: int) -> tuple[int, int]:
    """[start, stop) of item indices in shard `shard` of `shards`, sizes differing by at most one."""
    return pairs * shard // shards, pairs * (shard + 1) // shards


def shard_path(out: Path, source: str, shard: int, shards: int, gzip: bool) -> Path:
    """Output path of one source's file in one shard."""
    suffix = f"-{shard:05d}-of-{shards:05d}" if shards > 1 else ""
    return out / f"{SOURCE_FILES[source]}{suffix}.jsonl{'.gz' if gzip else ''}"


def write_shard(out: Path, pairs: int, seed: int, shards: int, shard: int,
                gzip: bool) -> list[tuple[str, int]]:
    """Write one shard's items split by source; returns (path, count) per file written."""
    start, stop = shard_range(pairs, shards, shard)
    writers, counts = {}, {}
    try:
        for item in generate_items(stop - start, seed, start):
            source = item["source"]
            if source not in writers:
                writers[source] = open_output(shard_path(out, source, shard, shards, gzip), gzip)
                counts[source] = 0
            writers[source].write(to_line(item))
            counts[source] += 1
    finally:
        for fh in writers.values():
            fh.close()
    return [(str(shard_path(out, s, shard, shards, gzip)), counts[s]) for s in SOURCE_FILES if s in counts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.generate_data",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--pairs", type=int, default=300,
                        help="number of items (compliant/non-compliant pairs)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument("--shards", type=int, default=1, help="split the output into K sets of files")
    parser.add_argument("--workers", type=int, default=1, help="processes writing shards in parallel")
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz instead of .jsonl")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.shards < 1 or args.workers < 1:
        parser.error("--pairs, --shards and --workers must be >= 1")
    if args.shards > args.pairs:
        parser.error(f"--shards ({args.shards}) cannot exceed --pairs ({args.pairs})")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(args.out, args.pairs, args.seed, args.shards, k, args.gzip) for k in range(args.shards)]
    if args.workers > 1 and args.shards > 1:
        with ProcessPoolExecutor(max_workers=min(args.workers, args.shards)) as pool:
            results = list(pool.map(write_shard, *zip(*jobs, strict=True)))
    else:
        results = [write_shard(*job) for job in jobs]
    total = 0
    for files in results:
        for path, count in files:
            print(f"{path}: {count} pairs, {Path(path).stat().st_size:,} bytes")
            total += count
    print(f"total: {total} pairs (seed {args.seed}, {args.shards} shard(s)) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
