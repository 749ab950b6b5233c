"""Demonstrations for people to look at, not tests: `make demo-cluster` runs `demo.cluster`."""
