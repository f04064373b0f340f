"""Protocol adapters, data plane, model runtime and server assembly for the batching model server."""
