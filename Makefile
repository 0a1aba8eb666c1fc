# Engage: `make run` starts the assistant, `make test` runs every test.
# Both set everything up first (environments, Redis, encoder, model), skipping
# what is already up to date.
PY ?= python3

.PHONY: help setup run shell test test-unit train bench fuzz clean

help:
	@echo "make run     set up (first time: ~10 min) and start Redis, the analytics service, the action server and Rasa"
	@echo "make shell   chat with the running assistant in this terminal"
	@echo "make test    set up and run every test (unit, conversation, end-to-end)"
	@echo "make bench   benchmarks: load (stack vs bare Rasa and vs no analytics), analytics replay, FAQ latency and retrieval (vs BM25), channels, idea clustering and near duplicates, handover and the staff console, dashboards"
	@echo "make fuzz    the fuzz suite's long run: 10,000 cases per entry point against the running stack"
	@echo "make train   retrain the model if bot/, nlu_data/ or config.yml changed"
	@echo "make clean   remove local runtime data (.data/, results/)"

setup:
	@bash scripts/setup.sh

run: setup
	@$(PY) scripts/stack.py

shell:
	@$(PY) scripts/chat.py

train:
	@$(PY) scripts/train.py

test: setup
	@bash scripts/test.sh

bench: setup
	@.venvs/actions/bin/python bench/load.py
	@PYTHONPATH=. .venvs/actions/bin/python bench/analytics_replay.py
	@PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/faq_latency.py
	@PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/faq_retrieval.py
	@PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/idea_clustering.py
	@PYTHONPATH=. .venvs/rasa/bin/python bench/connectors.py
	@PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/handover.py
	@PYTHONPATH=. .venvs/actions/bin/python bench/dashboards.py

# The short, seed-fixed run of the same suite is part of `make test` (tests/e2e/fuzz, and the
# analytics service's reader of log entries, which the consumers and the replay share).
# Counts go to results/fuzz/*.json; BENCHMARKS.md records a run.
fuzz: setup
	@ENGAGE_FUZZ_EXAMPLES=$${ENGAGE_FUZZ_EXAMPLES:-10000} PYTHONPATH=$$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
	  RASA_TELEMETRY_ENABLED=false TOKENIZERS_PARALLELISM=false \
	  .venvs/actions/bin/python -m pytest -q -s -p no:cacheprovider tests/e2e/fuzz \
	  tests/analytics/test_schema.py::test_any_entry_read_as_pairs_parses_as_the_mapping_does_or_fails_with_a_schema_error

clean:
	rm -rf .data results
