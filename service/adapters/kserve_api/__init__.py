"""KServe v2 / Open Inference Protocol gRPC (inference.GRPCInferenceService) over the data plane."""
