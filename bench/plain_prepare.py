"""The original plan's preparation, as written there: one process, json.loads per line, lists of
dicts, pandas, sklearn's stratified split after flattening, hand-written Mistral tokens.

Baseline for bench/bench_prepare.py only (it has the plan's known faults: pairs leak across splits,
a hand-written <s> gives a double BOS). `--tokenize` adds the tokenisation the plan did later in its
training script, so the work matches the Ray Data job's.

    python bench/plain_prepare.py --input DIR --out DIR [--tokenize MODEL_DIR]
"""

import argparse
import glob
import json
import os

import pandas as pd
from sklearn.model_selection import train_test_split

INSTRUCTION = "You are an expert AI Forensic Compliance Auditor analyzing financial advisor-client communications."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenize", help="tokenizer folder: tokenise every text like the plan's training script")
    args = ap.parse_args()
    data = []
    for path in sorted(glob.glob(os.path.join(args.input, "*.jsonl"))):
        with open(path) as f:
            for line in f:
                data.append(json.loads(line))
    examples = []
    for item in data:
        for key in ("compliant_version", "non_compliant_version"):
            if key in item:
                v = item[key]
                examples.append({
                    "conversation": v["scenario"], "final_verdict": v["final_verdict"],
                    "executive_summary": v["executive_summary"], "rule_violated": v["rule_violated"],
                    "compliance_topic": v["compliance_topic"], "severity": v["severity"],
                    "evidence_list": v["evidence_list"], "reasoning_trace": v["reasoning_trace"],
                    "source": item.get("source", "synthetic"),
                    "format_type": item.get("chunk_analysis", {}).get("format_identified", "unknown"),
                })
    formatted = []
    for ex in examples:
        output = {k: ex[k] for k in ("final_verdict", "executive_summary", "rule_violated", "compliance_topic",
                                     "severity", "evidence_list", "reasoning_trace")}
        prompt = f"{INSTRUCTION}\n\nCOMMUNICATION:\n{ex['conversation']}"
        completion = json.dumps(output, indent=2)
        formatted.append({"text": f"<s>[INST] {prompt} [/INST]\n{completion}</s>", "prompt": prompt,
                          "completion": completion})
    labels = [ex["compliance_topic"] for ex in examples]
    train_idx, temp_idx = train_test_split(range(len(examples)), test_size=0.2, random_state=42, stratify=labels)
    val_idx, test_idx = train_test_split(temp_idx, test_size=0.5, random_state=42,
                                         stratify=[labels[i] for i in temp_idx])
    os.makedirs(args.out, exist_ok=True)
    tokenizer = None
    if args.tokenize:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenize)
    for name, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx)):
        df = pd.DataFrame([formatted[i] for i in idx])
        if tokenizer is not None:
            df["input_ids"] = tokenizer(df["text"].tolist(), truncation=True, max_length=2048)["input_ids"]
        df.to_parquet(os.path.join(args.out, f"{name}.parquet"))
    print(f"plain: {len(examples)} records")


if __name__ == "__main__":
    main()
