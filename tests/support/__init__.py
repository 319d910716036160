"""What the tests share: builders, the CLI and HTTP helpers, the servers, workloads, the fake Open edX
and the abstract contract suites. Test modules import from here, never from each other."""
