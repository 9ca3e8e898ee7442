"""Workload controllers (ReplicaSet, Deployment) over a small object API, free of HTTP."""
