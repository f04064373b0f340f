"""The protocol-neutral data plane: one call per request kind, from named tensors (or examples) to answers."""
