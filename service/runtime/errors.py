"""The runtime's faults that callers tell apart, importable without TensorFlow."""


class BatchInputError(ValueError):
    """Raised by a signature call when the inputs themselves are wrong (TensorFlow's INVALID_ARGUMENT).

    A batch failing this way is re-run request by request, so one bad request fails alone.
    """
