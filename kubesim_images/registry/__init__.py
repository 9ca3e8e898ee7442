"""Registry backends: where pulls get their bytes (simulated, or a real OCI registry)."""
