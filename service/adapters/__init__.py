"""Protocol adapters: each translates its protocol's requests into data plane calls and the answers back.

`grpc_api/` (TF Serving's gRPC), `rest_api/` (TF Serving's REST), `kserve_api/` (KServe v2 over gRPC) never
import each other; what two of them share sits beside them here (gRPC status mapping, TF Serving's status
and metadata messages, administrative access).
"""
