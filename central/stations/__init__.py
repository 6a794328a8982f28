"""Reference data: stations, cameras, grids, departments, workers, routing rules, SLA policy."""
