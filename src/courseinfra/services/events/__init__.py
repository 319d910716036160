"""The event pipeline: ingesting event lines, the jobs' results and counters, the event streams."""
