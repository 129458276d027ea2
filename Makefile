# Only benchmark targets so far; see docs/benchmarks.md.
.PHONY: bench bench-quick

bench:  ## baselines and the CSMS, same run, pinned; about 10-15 minutes
	scripts/bench.sh

bench-quick:  ## a short smoke run of the benchmark script
	BENCH_QUICK=1 scripts/bench.sh
