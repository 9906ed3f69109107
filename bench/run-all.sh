#!/bin/sh
# Every benchmark, REPS (5) times, medians with min and max, the ratios of
# the performance targets, written to bench/results/ and into bench/README.md
# between its run-all markers: bench/run_all.py says how.
#
#   [REPS=5] [QUICK=1] [ONLY=objectstore,tasks,actors,dag] bench/run-all.sh [BUILD_DIR]
exec /usr/bin/python3 "$(dirname "$0")/run_all.py" "$@"
