"""The pure core: course structure, relations, job requests and their rules. No I/O lives here."""
