"""The tensor codec every protocol adapter shares: TensorProto, TF Serving REST JSON and KServe v2 tensors ⇄ numpy.

Protocol-neutral and TensorFlow-free at request time (the protos are plain protobuf messages): adapters turn
their messages into named numpy arrays here and hand them to the data plane, never importing each other.
"""
