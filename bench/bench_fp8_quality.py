"""What fp8 prefill (engine.fp8_prefill) does to a trained detector's verdict probability, on the hand-written set.

    python bench/bench_fp8_quality.py                                   # the demo's adapter, else the embedded model
    python bench/bench_fp8_quality.py --model runs/adapters/smollm2-sample-lora --device cpu

The GPU bench (bench/bench_engine.py --fp8) measures the speed on a random-weight 7B, whose probabilities say
nothing about a trained model's. This scores every communication of data/handwritten/ (pairs and singles, raw)
with one forward pass, prefill in the model's dtype and in float8 (same weights, same process), and reports how
far the probabilities move, how often the verdict at 0.5 flips, and ROC-AUC both ways. float8 matmuls run on
CPUs too (slowly): the figures are the same arithmetic as on the GPU, up to accumulation order.
"""

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "runs" / "adapters" / "smollm2-sample-lora"
DATA = [ROOT / "data" / "handwritten" / "pairs.jsonl", ROOT / "data" / "handwritten" / "singles.jsonl"]


def communications(paths: list[Path]) -> tuple[list[str], np.ndarray]:
    """Each version's text and label (1 = NON_COMPLIANT) from the raw check-set files."""
    texts, labels = [], []
    for path in paths:
        for line in path.read_text().splitlines():
            item = json.loads(line)
            for key in ("compliant_version", "non_compliant_version"):
                if key in item:
                    texts.append(item[key]["scenario"])
                    labels.append(int(item[key]["final_verdict"] == "NON_COMPLIANT"))
    return texts, np.array(labels)


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL) if DEFAULT_MODEL.is_dir() else "embedded")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    texts, labels = communications(DATA)
    cfg = dict(device=args.device, batch_size=args.batch_size, calibrate=False)
    exact = Detector(DetectorModelConfig(name_or_path=args.model), EngineConfig(**cfg))
    fp8 = Detector(DetectorModelConfig(name_or_path=args.model), EngineConfig(**cfg, fp8_prefill=True),
                   model=exact.model, tokenizer=exact.tokenizer)
    prompts = exact.encode_prompts(texts)
    a, b = exact.score(prompts, progress=True).probability, fp8.score(prompts, progress=True).probability
    diff = np.abs(a - b)
    figures = {"model": args.model, "device": exact.device, "dtype": str(exact.dtype), "communications": len(texts),
               "max_abs_probability_diff": round(float(diff.max()), 4),
               "mean_abs_probability_diff": round(float(diff.mean()), 4),
               "verdicts_agree_at_0.5": round(float(((a >= 0.5) == (b >= 0.5)).mean()), 4),
               "probability_range": [round(float(a.min()), 4), round(float(a.max()), 4)],
               "roc_auc": round(float(roc_auc_score(labels, a)), 4),
               "roc_auc_fp8": round(float(roc_auc_score(labels, b)), 4)}
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
