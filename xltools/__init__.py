"""Developer tooling shared by the demo, the tests, the benchmark and the chaos harness."""
