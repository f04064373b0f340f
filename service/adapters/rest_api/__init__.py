"""TF Serving's REST API (`/v1/models/...`) over the protocol-neutral data plane, on aiohttp."""
