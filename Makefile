# Engage: `make run` starts the assistant, `make test` runs every test.
# Both set everything up first (environments, Redis, encoder, model), skipping
# what is already up to date.
PY ?= python3

.PHONY: help setup run shell test test-unit train bench clean

help:
	@echo "make run     set up (first time: ~10 min) and start Redis, the action server and Rasa"
	@echo "make shell   chat with the running assistant in this terminal"
	@echo "make test    set up and run every test (unit, conversation, end-to-end)"
	@echo "make bench   benchmarks: load (stack vs bare Rasa), FAQ latency and retrieval (vs BM25), channels"
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
	@PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/faq_latency.py
	@PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/faq_retrieval.py
	@PYTHONPATH=. .venvs/rasa/bin/python bench/connectors.py

clean:
	rm -rf .data results
