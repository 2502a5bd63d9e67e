.PHONY: serve test bench lint

serve:  ## run the service on the embedded default (SQLite)
	scripts/serve

test:   ## the whole test suite, real Kafka and MongoDB-wire servers included
	scripts/test

bench:  ## every benchmark beside its baseline, one run → bench/results/latest.{md,json,png}
	bench/run

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy --strict core
