# Every target creates and uses the local virtual environment on its own.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
INVBENCH := $(BIN)/invbench
# An offline CIFAR-10 copy in $(DATA_DIR) is used when it exists (`make data`
# builds it from ../shared/data); without one, Keras downloads CIFAR-10.
DATA_DIR ?= data
SHARED_DATA ?= ../shared/data
ifneq ($(wildcard $(DATA_DIR)/cifar-10-python.tar.gz $(DATA_DIR)/cifar-10-batches-py),)
export INVBENCH_DATA_DIR ?= $(abspath $(DATA_DIR))
endif
STAMP := $(shell date +%Y%m%d-%H%M%S)
REPRODUCE_DIR ?= runs/reproduce
SMOKE_SET := --set train.epochs=1 --set train.warmup_epochs=0 --set data.limit_train=2048 --set data.limit_test=2048

.PHONY: install test lint format docs data train-conv train-inv reproduce protocol rednet kernel-size study full-study compare bench bench-peer smoke wheel-check slurm-check clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(INSTALLED)

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

# A real single-node SLURM cluster (Debian's slurm-wlm and munge, installed when
# missing; root): a sweep as a job array, one task preempted and requeued, then the
# comparison after it (tests/test_slurm.py).
slurm-check: $(INSTALLED)
	@command -v slurmctld >/dev/null && command -v munged >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    slurmctld slurmd slurm-client munge >/dev/null; }
	INVBENCH_SLURM_CHECK=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_slurm.py

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The tables generated from the code and from results/ (tests check they are current).
docs: $(INSTALLED)
	$(BIN)/python -m involution_bench.kinds docs/configs.md
	$(BIN)/python -m involution_bench.analysis.published README.md docs/results.md
	$(BIN)/python -m involution_bench.analysis.full_study results/full-study docs

# Builds $(DATA_DIR)/cifar-10-python.tar.gz from the shared JPEG copy (once).
data: $(INSTALLED)
	$(BIN)/python $(SHARED_DATA)/build_cifar10.py $(DATA_DIR)

train-conv: $(INSTALLED)
	$(INVBENCH) train --config configs/conv.yaml

train-inv: $(INSTALLED)
	$(INVBENCH) train --config configs/inv.yaml

# The article's experiment: both models, 20 epochs each, $(SEEDS) seeds
# (seeds 42, 43, ...), then side by side against the CNN (table, intervals
# and figures in $(REPRODUCE_DIR)/compare) and the involution kernel maps of
# the first seed. Run it again to resume it (in the same REPRODUCE_DIR);
# PRECISION=mixed_bfloat16 trains in bfloat16 (float32 by default).
PRECISION ?=
PRECISION_SET := $(if $(PRECISION),--set train.precision=$(PRECISION))
reproduce: $(INSTALLED)
	$(INVBENCH) sweep -c configs/conv.yaml --repeat $(SEEDS) $(PRECISION_SET) --runs-dir $(REPRODUCE_DIR) --quiet
	$(INVBENCH) sweep -c configs/inv.yaml --repeat $(SEEDS) $(PRECISION_SET) --runs-dir $(REPRODUCE_DIR) --quiet
	$(INVBENCH) compare $(REPRODUCE_DIR)/sweep-* --baseline article-conv --out $(REPRODUCE_DIR)/compare
	$(INVBENCH) kernels "$$(ls -d $(REPRODUCE_DIR)/sweep-*-article-inv/m00-*/*/ | head -n 1)" --out $(REPRODUCE_DIR)/compare/kernels.png

# What the article's protocol costs: the article pair, $(PROTOCOL_SEEDS) seeds each, in
# bfloat16, validated on the test set as the article does (on-test/) and on 5,000
# held-out training images (held-out/), then compared by the chosen models' test
# accuracy. Run it again to resume it.
PROTOCOL_DIR ?= runs/protocol
PROTOCOL_SEEDS ?= 3
PROTOCOL_SET := --repeat $(PROTOCOL_SEEDS) --set train.precision=mixed_bfloat16 --quiet
protocol: $(INSTALLED)
	$(INVBENCH) sweep -c configs/conv.yaml $(PROTOCOL_SET) --runs-dir $(PROTOCOL_DIR)/on-test
	$(INVBENCH) sweep -c configs/conv.yaml $(PROTOCOL_SET) --set data.validation=5000 --runs-dir $(PROTOCOL_DIR)/held-out
	$(INVBENCH) sweep -c configs/inv.yaml $(PROTOCOL_SET) --runs-dir $(PROTOCOL_DIR)/on-test
	$(INVBENCH) sweep -c configs/inv.yaml $(PROTOCOL_SET) --set data.validation=5000 --runs-dir $(PROTOCOL_DIR)/held-out
	$(INVBENCH) compare $(PROTOCOL_DIR) --out $(PROTOCOL_DIR)/compare

# The RedNet/ResNet pair (20 epochs each, $(SEEDS) seeds), then side by side against
# the ResNet. Run it again to resume it (in the same PAIR_DIR).
PAIR_DIR ?= runs/rednet
SEEDS ?= 1
rednet: $(INSTALLED)
	$(INVBENCH) sweep -c configs/resnet.yaml --repeat $(SEEDS) --runs-dir $(PAIR_DIR) --quiet
	$(INVBENCH) sweep -c configs/rednet.yaml --repeat $(SEEDS) --runs-dir $(PAIR_DIR) --quiet
	$(INVBENCH) compare $(PAIR_DIR)/sweep-* --baseline resnet --out $(PAIR_DIR)/compare

# RedNet's involution kernel size 3, 5 and 7 (every involution at once), $(SEEDS)
# seeds, $(EPOCHS) epochs each, then compared against K=7 with tradeoff.png.
# Run it again to resume an interrupted sweep.
SWEEP_DIR ?= runs/kernel-size
EPOCHS ?= 5
KERNEL_SIZES ?= 3,5,7
kernel-size: $(INSTALLED)
	$(INVBENCH) sweep -c configs/rednet.yaml --grid 'model.layers.*.residual.layers.*.involution.kernel_size=$(KERNEL_SIZES)' --repeat $(SEEDS) --set train.epochs=$(EPOCHS) --runs-dir $(SWEEP_DIR) --quiet
	$(INVBENCH) compare $(SWEEP_DIR)/sweep-*-rednet --baseline kernel_size=7 --out $(SWEEP_DIR)/compare

# Which operator? Convolution, involution and local self-attention at equal
# multiply-adds (configs/equal-macs), $(STUDY_SEEDS) seeds and $(STUDY_EPOCHS)
# epochs each, then compared against the convolution (the ResNet), with
# tradeoff.png and the involution and attention maps of each first seed, side by side.
# Run it again to resume an interrupted study.
STUDY_DIR ?= runs/equal-macs
STUDY_SEEDS ?= 3
STUDY_EPOCHS ?= 8
STUDY_OPERATORS ?= attention involution conv
study: $(INSTALLED)
	for operator in $(STUDY_OPERATORS); do \
	  $(INVBENCH) sweep -c configs/equal-macs/$$operator.yaml --repeat $(STUDY_SEEDS) --set train.epochs=$(STUDY_EPOCHS) --runs-dir $(STUDY_DIR) --quiet || exit 1; \
	done
	$(INVBENCH) compare $(STUDY_DIR)/sweep-* --baseline equal-conv --out $(STUDY_DIR)/compare
	$(INVBENCH) kernels "$$(ls -d $(STUDY_DIR)/sweep-*-equal-involution/m00-*/*/ | head -n 1)" "$$(ls -d $(STUDY_DIR)/sweep-*-equal-attention/m00-*/*/ | head -n 1)" --images 6 --out $(STUDY_DIR)/compare/maps.png

# The answer at full length: convolution, involution and local self-attention at two
# budgets (configs/equal-macs, 4.15 M MACs per image, and configs/quarter-macs,
# 1.09 M), 20 epochs and $(FULL_SEEDS) seeds each (42, 43, ...). Every run is chosen on
# 5,000 held-out training images, tested once, and carries its robustness. Members
# train one at a time, seed by seed across the six configs, so that a stopped study
# is balanced, and each one's small files are copied to $(FULL_RESULTS) as it
# finishes (commit them: on another machine, members completed there are not
# trained again). Run it again to resume it; `make docs` then regenerates the
# README's and docs/results.md's tables and figures from $(FULL_RESULTS).
FULL_DIR ?= runs/full-study
FULL_RESULTS ?= results/full-study
FULL_SEEDS ?= 5
FULL_CONFIGS ?= equal-macs/conv equal-macs/involution equal-macs/attention quarter-macs/conv quarter-macs/involution quarter-macs/attention
FULL_SET := --repeat $(FULL_SEEDS) --set data.validation=5000 --set train.robustness=true --runs-dir $(FULL_DIR) --done-in $(FULL_RESULTS) --quiet
full-study: $(INSTALLED)
	for seed in $$(seq 1 $(FULL_SEEDS)); do \
	  for config in $(FULL_CONFIGS); do \
	    $(INVBENCH) sweep -c configs/$$config.yaml --shard $$seed/$(FULL_SEEDS) $(FULL_SET) || exit 1; \
	    $(INVBENCH) export $(FULL_DIR) --to $(FULL_RESULTS) --completed || exit 1; \
	  done; \
	done

# Every run below $(RUNS), side by side: make compare RUNS=runs/reproduce
RUNS ?= runs
COMPARE_DIR ?= runs/compare-$(STAMP)
compare: $(INSTALLED)
	$(INVBENCH) compare $(RUNS) --out $(COMPARE_DIR)

# Start-up of the CLI, the op's implementations against the article's form (float32
# and bfloat16), then whole models (the RedNet pair in bfloat16 too), then where
# the RedNet pair's step goes: every table of docs/benchmarks.md.
bench: $(INSTALLED)
	$(INVBENCH) bench cli
	$(INVBENCH) bench op
	$(INVBENCH) bench op --dtype bfloat16
	$(INVBENCH) bench model --config configs/conv.yaml --config configs/inv.yaml
	$(INVBENCH) bench model --config configs/rednet.yaml --config configs/resnet.yaml
	$(INVBENCH) bench model --config configs/rednet.yaml --config configs/resnet.yaml --set train.precision=mixed_bfloat16
	$(INVBENCH) bench model --config configs/equal-macs/conv.yaml --config configs/equal-macs/involution.yaml --config configs/equal-macs/attention.yaml
	$(INVBENCH) bench layers --config configs/resnet.yaml --config configs/rednet.yaml
	$(INVBENCH) bench epoch --config configs/resnet.yaml --config configs/rednet.yaml
	$(INVBENCH) bench corruptions
	$(INVBENCH) bench runs

# invbench's training step beside PyTorch's for the same network (`invbench bench peer`:
# channels-last and NCHW, alternating in one process). PyTorch is not a dependency of
# invbench: this installs it into the virtual environment. Where pip would take a CUDA
# build, pass TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu".
TORCH_VERSION ?= 2.13.0
TORCH_PIP ?=
PEER_CONFIGS ?= configs/resnet.yaml configs/conv.yaml
bench-peer: $(INSTALLED)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_PIP) torch==$(TORCH_VERSION)
	$(INVBENCH) bench peer $(addprefix --config ,$(PEER_CONFIGS))

# One epoch of each model on 2,048 images: proves the whole path works.
smoke: $(INSTALLED)
	$(INVBENCH) train --quiet --config configs/conv.yaml --config configs/inv.yaml --config configs/rednet.yaml --config configs/resnet.yaml --config configs/equal-macs/attention.yaml $(SMOKE_SET) --runs-dir runs/smoke
	$(INVBENCH) compare runs/smoke --out runs/smoke/compare

# The built wheel in a new virtual environment, run outside the repository: the
# packaged configs by name, and one short training run where the offline copy is.
WHEEL_DIR := build/wheel
wheel-check: $(INSTALLED)
	rm -rf $(WHEEL_DIR) && $(BIN)/pip wheel --quiet --no-deps -w $(WHEEL_DIR) .
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/pip install --quiet $(WHEEL_DIR)/*.whl
	cd $$(mktemp -d) && $(abspath $(WHEEL_DIR))/venv/bin/invbench config --list \
	  && $(abspath $(WHEEL_DIR))/venv/bin/invbench info article-inv equal-macs/conv \
	  && if [ -n "$$INVBENCH_DATA_DIR" ]; then $(abspath $(WHEEL_DIR))/venv/bin/invbench train -q \
	    -c article-inv --set train.epochs=1 --set data.limit_train=256 --set data.limit_test=256 \
	    && $(abspath $(WHEEL_DIR))/venv/bin/invbench robustness runs/*-article-inv --limit 64; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
