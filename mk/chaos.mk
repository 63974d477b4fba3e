# Exactly-once under random kill -9 of every component (docs/chaos.md): a bounded run of CHAOS_EVENTS events through
# the whole pipeline on a platform of its own, CHAOS_KILLS kills of each component, every store reconciled at the end.
# Writes reports/chaos.json; prints the seed (replay a failure with `make chaos CHAOS_SEED=<seed>`).
# The short version (100k events, one kill of each) is tests/e2e/test_chaos.py, part of `make test`.
CHAOS_EVENTS ?= 2000000
CHAOS_KILLS ?= 3
CHAOS_SEED ?=
CHAOS_RATE ?= 0

.PHONY: chaos
chaos: install
	@$(PY) -m twitch_pipeline.cli chaos --events $(CHAOS_EVENTS) --kills-per-component $(CHAOS_KILLS) --rate $(CHAOS_RATE) \
		$(if $(CHAOS_SEED),--seed $(CHAOS_SEED))
