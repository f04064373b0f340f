"""gRPC adapters: TF Serving's PredictionService and ModelService over the protocol-neutral data plane."""
