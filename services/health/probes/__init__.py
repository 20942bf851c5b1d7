"""Probes of the platform's components: each checks one thing and knows nothing of gRPC."""
