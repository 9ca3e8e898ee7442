"""The daemon: one simulated node behind a Kubernetes-shaped HTTP API."""
