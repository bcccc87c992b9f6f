"""porthole benchmark suite: see bench/README.md."""
