"""Bag-of-words shortcut benchmark of the synthetic-data generator, v2 (this checkout) beside v1.

    .venv/bin/python bench/bench_shortcut.py --pairs 2000 --seed 1000 [--v1-ref main]

Generates N fresh pairs and reports what TF-IDF (1-2 grams) + logistic regression reaches with
5-fold cross-validation grouped by pair (both versions of a pair in the same fold): accuracy,
ROC-AUC and pair ranking (share of pairs whose violating version scores higher). A generator whose
versions differ in word choice scores ~1.0; issue 14's target for v2 is accuracy <= 0.80.
The v1 generator (pipeline/synth.py + pipeline/synth_topics.py) is loaded from git ref --v1-ref
into a temporary module when that ref still has it; `--v1-ref ""` skips it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import synth  # noqa: E402
from pipeline.synth.shortcut import bow_cross_validation  # noqa: E402


def load_v1(ref: str):
    """The v1 generator module from git ref `ref`, or None when the ref does not have it."""
    def show(path: str) -> str | None:
        done = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else None

    topics_src, synth_src = show("pipeline/synth_topics.py"), show("pipeline/synth.py")
    if topics_src is None or synth_src is None:
        return None
    topics = types.ModuleType("complyray_v1_synth_topics")
    sys.modules[topics.__name__] = topics
    exec(compile(topics_src, "v1/synth_topics.py", "exec"), topics.__dict__)
    synth_src = synth_src.replace("from pipeline import synth_topics as cat",
                                  "import complyray_v1_synth_topics as cat")
    synth_src = synth_src.replace("from pipeline.synth_topics import", "from complyray_v1_synth_topics import")
    module = types.ModuleType("complyray_v1_synth")
    sys.modules[module.__name__] = module
    exec(compile(synth_src, "v1/synth.py", "exec"), module.__dict__)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="freshly generated pairs per generator")
    parser.add_argument("--seed", type=int, default=1000, help="generation seed (not the bundled sample's 7)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--v1-ref", default="c88f686^", help="git ref holding the v1 generator ('' to skip)")
    args = parser.parse_args()
    generators = [("v2 (pipeline.synth)", synth)]
    v1 = load_v1(args.v1_ref) if args.v1_ref else None
    if v1 is not None:
        generators.insert(0, (f"v1 ({args.v1_ref}:pipeline/synth.py)", v1))
    elif args.v1_ref:
        print(f"v1 generator not found at git ref {args.v1_ref!r}; measured before the switch: accuracy 0.999, "
              "ROC-AUC 1.000 (2,000 pairs, seed 1000)")
    print(f"TF-IDF 1-2 grams + logistic regression, {args.folds}-fold CV grouped by pair, "
          f"{args.pairs} pairs ({2 * args.pairs} versions), seed {args.seed}")
    print(f"{'generator':<36} {'accuracy':>9} {'ROC-AUC':>8} {'pair rank':>10} {'seconds':>8}")
    for name, module in generators:
        start = time.perf_counter()
        items = list(module.generate_items(args.pairs, seed=args.seed))
        result = bow_cross_validation(items, folds=args.folds)
        print(f"{name:<36} {result['accuracy']:>9.3f} {result['roc_auc']:>8.3f} {result['pair_ranking']:>10.3f} "
              f"{time.perf_counter() - start:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
