"""A fault-injecting reverse proxy in front of a registry (`kubesim-images fault-proxy`)."""
