"""Failed events: what the jobs did not process, kept with their reasons until replayed."""
