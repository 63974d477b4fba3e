# The end-to-end benchmark alone (benchmarks/e2e.py; `make bench` runs it with the others). It writes
# reports/bench.{json,md,svg} and .run/bench/e2e.json; sizes come from BENCH_E2E_* (docs/benchmarks.md).
.PHONY: bench-e2e
bench-e2e: install
	@$(PY) -m benchmarks e2e
