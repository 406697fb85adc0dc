"""Pure builders: (platform, design, config) -> Kubernetes manifests. No I/O, no globals."""
