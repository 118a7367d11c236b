# The two commands of the README. Each does the whole set-up first (idempotent).
.PHONY: setup run test lint bench

setup:
	@scripts/setup.sh

run: setup  ## the hub on the example config, with a live demo of every kind of traffic
	.venv/bin/hub demo

test: setup  ## the whole test suite on the real RabbitMQ and PostgreSQL, then the linters
	.venv/bin/pytest -q -p no:cacheprovider
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: setup
	.venv/bin/python -m bench.run
