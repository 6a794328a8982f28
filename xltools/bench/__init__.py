"""The edge benchmark (scripts/bench): workloads, contenders and ceilings of ../shared/bench/README.md."""
