"""Process-level pieces: settings from flags and environment, logging, TLS, the start-up self-warm-up."""
