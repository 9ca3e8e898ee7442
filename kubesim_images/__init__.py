"""kubesim-images: a simulation of the Kubernetes kubelet's image manager."""

from __future__ import annotations

__version__ = "0.1.0"
