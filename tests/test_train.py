"""The training job on a real local Ray with a tiny random Mistral: labels, learning, artifacts,
resume after a failure and after resubmission, and configs that fail fast naming the key."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from conftest import item, write_jsonl
from pipeline.config import ConfigError, load_config
from pipeline.prepare.config import PrepareConfig
from pipeline.train.config import TrainConfig
from pipeline.prepare.run import run_prepare

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ["Guarantees Against Loss", "Promissory Claims", "Churning", "Selling Away"]
TRAIN_CONFIGS = sorted((ROOT / "jobs" / "configs").glob("train_*.yaml"))


@pytest.fixture(scope="module")
def prepared(tiny_mistral, ray_session, tmp_path_factory):
    """40 pairs prepared for the tiny Mistral; returns (prepared_dir, manifest)."""
    raw = write_jsonl(tmp_path_factory.mktemp("raw") / "pairs.jsonl", [item(i, TOPICS[i % 4]) for i in range(40)])
    out = tmp_path_factory.mktemp("prepared")
    cfg = load_config(PrepareConfig, None, [f"data.paths=[{raw}]", f"data.output_dir={out}",
                                            f"model.name_or_path={tiny_mistral}", "data.max_seq_len=768",
                                            "data.validation_fraction=0.2", "data.test_fraction=0.1"])
    return out, run_prepare(cfg).manifest


def train_cfg(prepared, tiny_mistral, tmp, *overrides) -> TrainConfig:
    """Tiny but real: 4 steps on 2 CPU workers, evaluated and checkpointed every 2 steps."""
    return load_config(TrainConfig, None, [
        f"model.name_or_path={tiny_mistral}", f"data.prepared_dir={prepared[0]}", "data.eval_limit=8",
        "train.max_steps=4", "train.micro_batch_size=2", "train.learning_rate=5e-3", "train.warmup_ratio=0",
        "train.eval_steps=2", "train.save_steps=2", "train.logging_steps=1", "train.eval_on_start=true",
        "train.early_stopping_patience=null", "ray.num_workers=2", f"ray.storage_path={tmp}/ray",
        f"output_dir={tmp}/adapter", *overrides])


def lora_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def baseline(prepared, tiny_mistral, tmp_path_factory):
    """One uninterrupted 2-worker run; returns (TrainResult, config)."""
    from pipeline.train.run import run_training

    cfg = train_cfg(prepared, tiny_mistral, tmp_path_factory.mktemp("baseline"))
    return run_training(cfg), cfg


# ---- data and labels -------------------------------------------------------------------------------------------------

def test_collated_labels_mask_exactly_prompt_and_padding(prepared, tiny_mistral, tmp_path):
    from pipeline.models import load_tokenizer
    from pipeline.train.data import load_datasets, read_split
    from pipeline.train.trainer import build_trainer

    cfg = train_cfg(prepared, tiny_mistral, tmp_path, "ray.num_workers=1")
    tok = load_tokenizer(str(tiny_mistral))
    train, val = load_datasets(cfg.data.prepared_dir, None, 8, 768, tok.eos_token_id)
    table = read_split(cfg.data.prepared_dir, "train")
    prompt_tokens = table["prompt_tokens"].to_pylist()
    rows = [0, 1, 2]
    assert len({len(train[i]["input_ids"]) for i in rows}) > 1  # padding will happen
    trainer = build_trainer(cfg, tok, train, val, str(tmp_path / "hf"), precision="fp32")
    batch = trainer.data_collator([train[i] for i in rows])
    for r, i in enumerate(rows):
        ids, p = train[i]["input_ids"], prompt_tokens[i]
        labels = batch["labels"][r].tolist()
        assert labels[:p] == [-100] * p  # prompt: no loss
        assert labels[p:len(ids)] == ids[p:]  # answer: every token, incl. the last
        assert labels[len(ids) - 1] == tok.eos_token_id != tok.pad_token_id  # EOS is trained
        assert labels[len(ids):] == [-100] * (len(labels) - len(ids))  # padding: no loss
        assert batch["input_ids"][r, len(ids):].eq(tok.pad_token_id).all()
        assert batch["attention_mask"][r].sum() == len(ids)
    # TRL's fused LM head (logits on answer tokens only) and the model's own head agree on the loss.
    losses = []
    for fused in (True, False):
        trainer.fused_lm_head = fused
        with torch.no_grad():
            losses.append(trainer.compute_loss(trainer.model, dict(batch)).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_verdict_weight_finds_each_answers_verdict_token_and_adds_exactly_its_loss(prepared, tiny_mistral, tmp_path):
    from pipeline.models import load_tokenizer
    from pipeline.train.data import load_datasets
    from pipeline.train.trainer import build_trainer

    cfg = train_cfg(prepared, tiny_mistral, tmp_path, "ray.num_workers=1", "train.fused_lm_head=false",
                    "train.verdict_loss_weight=5")
    tok = load_tokenizer(str(tiny_mistral))
    train, val = load_datasets(cfg.data.prepared_dir, None, 8, 768, tok.eos_token_id)
    trainer = build_trainer(cfg, tok, train, val, str(tmp_path / "hf"), precision="fp32")
    rows = [0, 1, 2, 3]
    batch = dict(trainer.data_collator([train[i] for i in rows]))
    weight = trainer.verdict_weight
    found_rows, cols = weight.positions(batch["labels"])
    assert found_rows == [0, 1, 2, 3]
    assert tok.decode(weight.prefix).replace(" ", "").endswith('{"final_verdict":"')
    for r, c in zip(found_rows, cols):  # the token after the prefix starts this row's verdict
        assert tok.decode(batch["labels"][r, c:c + 4]).lstrip().startswith(("COMP", "NON"))
    # Packed rows (padding-free): every answer in the row is found.
    packed = torch.cat([batch["labels"][0], batch["labels"][1]]).unsqueeze(0)
    assert len(weight.positions(packed)[0]) == 2
    trainer.model.train()
    with torch.no_grad():
        weighted = trainer.compute_loss(trainer.model, dict(batch)).item()
        trainer.model.eval()
        plain = trainer.compute_loss(trainer.model, dict(batch)).item()  # evaluation: unweighted
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    r, c = torch.tensor(found_rows), torch.tensor(cols)
    ce = torch.nn.functional.cross_entropy(logits[r, c - 1], batch["labels"][r, c], reduction="sum")
    n = (batch["labels"][:, 1:] != -100).sum()
    assert weighted == pytest.approx(plain + 4 * ce.item() / n.item(), rel=1e-4)


def test_padding_free_batches_give_the_same_logits_as_padded_ones(prepared, tiny_mistral):
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from pipeline.models import load_tokenizer
    from pipeline.train.data import read_split, to_dataset

    tok = load_tokenizer(str(tiny_mistral))
    ds = to_dataset(read_split(str(prepared[0]), "train", 3), tok.eos_token_id)
    examples = [ds[i] for i in range(3)]
    model = AutoModelForCausalLM.from_pretrained(str(tiny_mistral), attn_implementation="sdpa").eval()
    flat = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)(examples)
    assert flat["input_ids"].shape[0] == 1 and "attention_mask" not in flat
    with torch.no_grad():
        # use_cache=False as in training: with a cache, transformers does not split packed sequences
        packed = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"], use_cache=False).logits[0]
        start = 0
        for ex in examples:
            n = len(ex["input_ids"])
            alone = model(input_ids=torch.tensor([ex["input_ids"]]), use_cache=False).logits[0]
            assert torch.allclose(packed[start:start + n], alone, atol=1e-4)  # no attention across examples
            start += n


def test_over_length_rows_and_foreign_tokenizers_fail_before_training(prepared, tiny_mistral, tmp_path):
    from pipeline.train.run import run_training

    with pytest.raises(ValueError, match=r"longer than train.max_seq_len=64 \(longest \d+ tokens\)"):
        run_training(train_cfg(prepared, tiny_mistral, tmp_path, "train.max_seq_len=64"))
    with pytest.raises(FileNotFoundError, match="data.prepared_dir="):
        run_training(train_cfg(prepared, tiny_mistral, tmp_path, f"data.prepared_dir={tmp_path}/none"))
    empty_val = tmp_path / "noval"
    (empty_val / "split=train").mkdir(parents=True)
    (empty_val / "split=train" / "part.parquet").touch()
    (empty_val / "_manifest.json").write_text(json.dumps(prepared[1]))
    with pytest.raises(FileNotFoundError, match=r"data.prepared_dir=.*missing or empty split=validation"):
        run_training(train_cfg(prepared, tiny_mistral, tmp_path, f"data.prepared_dir={empty_val}"))
    from pipeline.train.data import check_tokenizer
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(str(tiny_mistral))
    other.chat_template = "{{ messages }}"
    with pytest.raises(ValueError, match="model.name_or_path=x does not match .*chat_template_sha256"):
        check_tokenizer(prepared[1], other, "x")


# ---- training on Ray -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workers_learn_and_write_a_loadable_adapter(baseline, prepared, tiny_mistral):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result, cfg = baseline
    m = result.metrics
    assert m["global_step"] == 4 and m["num_workers"] == 2 and m["effective_batch"] == 2 * 1 * 2
    assert m["train_loss_last"] < m["train_loss_first"]
    assert [e["step"] for e in m["eval_losses"]] == [0, 2, 4]
    assert m["eval_loss_last"] < m["eval_loss_first"]
    assert m["tokens_per_second"] > 0 and all(e["tokens_per_second"] > 0 for e in m["train_losses"])
    assert m["tokens_per_second_per_worker"] == pytest.approx(m["tokens_per_second"] / 2, abs=0.1)
    assert m["peak_gpu_memory_gb_per_worker"] == [None, None]  # one entry per worker, from each (no GPU here)
    # Each checkpoint's size, save and upload time, as rank 0 saw them.
    assert [c["step"] for c in m["checkpoints"]] == [2, 4]
    assert all(c["bytes"] > 100_000 and c["save_seconds"] > 0 and c["report_seconds"] >= 0 for c in m["checkpoints"])
    out = Path(result.output_dir)
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
                 "training_config.json", "metrics.json", "loss_curve.png", "calibration.json", "cascade.json",
                 "cascade_bow.json"):
        assert (out / name).is_file(), name
    # The scale was fitted at the end of training on the whole validation split, with the trained weights:
    # the engine loading the artifact reproduces the raw scores it was fitted on (same NLL before the scale).
    from pipeline.evaluate.calibration import _nll, load_calibration, verdict_logit
    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector
    from pipeline.train.calibrate import validation_examples

    scale = load_calibration(out)
    texts, labels = validation_examples(cfg.data.prepared_dir)
    assert scale.method == "temperature" and scale.n_fit == len(texts) and scale.fitted_on.endswith("split=validation")
    assert scale.nll_after <= scale.nll_before + 1e-9
    detector = Detector(DetectorModelConfig(name_or_path=str(out)), EngineConfig(dtype="float32"))
    scores = detector.score(detector.encode_prompts(texts))
    assert detector.calibration == scale and detector.info["calibrated"]
    assert abs(_nll(verdict_logit(scores.raw_probability), np.array(labels, float), 1.0, 0.0) - scale.nll_before) < 1e-3
    np.testing.assert_allclose(scores.probability, scale.apply(scores.raw_probability), atol=1e-12)
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((out / "training_config.json").read_text())
    assert written["data"]["content_hash"] == prepared[1]["content_hash"] == m["content_hash"]
    assert written["config"]["lora"]["r"] == 16
    # precision 'auto' is written as what the workers resolved it to on this CPU, with the reason.
    from pipeline.precision import cpu_precision

    assert written["config"]["train"]["precision"] == cpu_precision("auto").precision
    assert written["precision_reason"].startswith("auto: CPU capability ")
    # LoRA starts with B = 0: every B must have moved away from it.
    bs = {k: v for k, v in lora_tensors(out).items() if "lora_B" in k}
    assert len(bs) == 2 * 7 and all(v.abs().sum() > 0 for v in bs.values())
    base = AutoModelForCausalLM.from_pretrained(str(tiny_mistral))
    x = torch.tensor([[1, 3, 5, 7, 11, 13]])
    with torch.no_grad():
        before = base(input_ids=x).logits
        tuned = PeftModel.from_pretrained(base, str(out))
        after = tuned(input_ids=x).logits
    assert not torch.allclose(before, after)
    run_dir = Path(result.run_dir)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    ckpts = sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())
    assert 1 <= len(ckpts) <= cfg.ray.checkpoints_to_keep
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", "trainer_state.json"} <= {p.name for p in ckpts[-1].iterdir()}


@pytest.mark.slow
def test_failure_after_a_checkpoint_resumes_to_the_same_result(baseline, prepared, tiny_mistral, tmp_path):
    from pipeline.train.run import run_training

    result = run_training(train_cfg(prepared, tiny_mistral, tmp_path, "train.fault_drill_step=2",
                                    "ray.max_failures=1"))
    m, ref = result.metrics, baseline[0].metrics
    assert m["resumed_from_step"] == 2 and m["global_step"] == ref["global_step"] == 4
    # Optimizer, scheduler, RNG and data position restored: steps 3-4 are the uninterrupted run's.
    for key, value in (("train_losses", "loss"), ("eval_losses", "eval_loss")):
        assert [e["step"] for e in m[key]] == [e["step"] for e in ref[key]]
        assert [e[value] for e in m[key]] == pytest.approx([e[value] for e in ref[key]], abs=1e-5)
    a, b = lora_tensors(Path(result.output_dir)), lora_tensors(Path(baseline[0].output_dir))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_resubmitting_the_same_run_name_resumes_and_changed_settings_are_refused(prepared, tiny_mistral, tmp_path):
    from pipeline.train.run import run_training

    first = run_training(train_cfg(prepared, tiny_mistral, tmp_path, "ray.num_workers=1", "train.max_steps=2"))
    assert first.metrics["global_step"] == 2 and first.metrics["resumed_from_step"] is None
    again = run_training(train_cfg(prepared, tiny_mistral, tmp_path, "ray.num_workers=1", "train.max_steps=4"))
    assert again.resumed and again.metrics["resumed_from_step"] == 2 and again.metrics["global_step"] == 4
    assert [e["step"] for e in again.metrics["train_losses"]] == [1, 2, 3, 4]  # history carried over
    with pytest.raises(ValueError, match=r"ray.run_name=adapter .*train.learning_rate: 0.005 -> 0.001"):
        run_training(train_cfg(prepared, tiny_mistral, tmp_path, "ray.num_workers=1", "train.learning_rate=1e-3"))


# ---- configs ---------------------------------------------------------------------------------------------------------

def test_bad_configs_fail_fast_through_the_job_naming_each_key():
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", "lora.r=0", "train.colour=red",
         "quantization.load_in_4bit=true"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "lora.r=0" in proc.stderr and "train.colour: unknown key" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", "quantization.load_in_4bit=true",
         "train.deepspeed=ray_cluster/deepspeed/zero3.json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    for expected in ("train.deepspeed='ray_cluster/deepspeed/zero3.json': ZeRO-3 cannot be combined",
                     "cannot be partitioned by ZeRO-3", "quantization.load_in_4bit=True: bitsandbytes 4-bit needs CUDA",
                     "train.deepspeed='ray_cluster/deepspeed/zero3.json': DeepSpeed here needs GPUs"):
        assert expected in proc.stderr


@pytest.mark.parametrize("overrides, key", [
    (["train.full_finetune=true", "train.merge_adapter=true"], "train.merge_adapter"),
    (["train.save_steps=30", "train.eval_steps=20"], "train.save_steps=30"),
    (["train.verdict_loss_weight=3"], "train.verdict_loss_weight=3.0: weighting the verdict token needs"),
    (["train.fault_drill_step=50"], "train.fault_drill_step=50: a fault drill needs ray.max_failures"),
    (["train.deepspeed=nowhere.json", "ray.use_gpu=true"], "train.deepspeed='nowhere.json': cannot read"),
    (["ray.use_gpu=true", "quantization.load_in_4bit=true", "train.full_finetune=true"], "train.full_finetune"),
])
def test_cross_field_problems_name_their_keys(overrides, key, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        load_config(TrainConfig, None, overrides)


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_train_configs_validate(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(TrainConfig, path)
    assert "python -m jobs.train --config jobs/configs/" + path.name in path.read_text().split("\n\n")[0]
    if "mistral7b" in path.name:
        assert cfg.ray.use_gpu and cfg.train.precision == "bf16"


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_deepspeed_configs_get_their_auto_values_from_the_trainer(name, stage, monkeypatch):
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    from pipeline.train.trainer import sft_args

    monkeypatch.chdir(ROOT)
    cfg = load_config(TrainConfig, None, ["train.micro_batch_size=8", "train.grad_accum=2", "ray.num_workers=1"])
    ds = HfTrainerDeepSpeedConfig(json.loads((ROOT / "ray_cluster" / "deepspeed" / f"{name}.json").read_text()))
    ds.trainer_config_process(sft_args(cfg, "unused", "bf16"))
    c = ds.config
    assert (c["train_micro_batch_size_per_gpu"], c["gradient_accumulation_steps"], c["train_batch_size"]) == (8, 2, 16)
    assert c["bf16"]["enabled"] is True and c["fp16"]["enabled"] is False and c["gradient_clipping"] == 1.0
    assert ds.get_value("zero_optimization.stage") == stage


def test_workers_revalidate_a_deepspeed_config_outside_the_repository(tmp_path, monkeypatch):
    """A Ray Train worker's working directory need not hold ray_cluster/: it re-validates the config
    with the JSON the driver read (found on the GPU machine, where ZeRO runs failed in the worker)."""
    from pipeline.config import config_to_dict

    monkeypatch.chdir(ROOT)
    cfg = load_config(TrainConfig, ROOT / "jobs/configs/train_mistral7b_zero3_lora.yaml", ["ray.num_workers=1"])
    payload = config_to_dict(cfg)
    ds = json.loads((ROOT / "ray_cluster/deepspeed/zero3.json").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="cannot read DeepSpeed config"):
        TrainConfig.model_validate(payload)
    assert TrainConfig.model_validate(payload, context={"deepspeed": ds}).train.deepspeed == cfg.train.deepspeed
    payload["quantization"]["load_in_4bit"] = True  # the stage still comes from the JSON: ZeRO-3 + 4-bit refused
    with pytest.raises(ValidationError, match="ZeRO-3 cannot be combined"):
        TrainConfig.model_validate(payload, context={"deepspeed": ds})
