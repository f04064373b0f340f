#!/bin/sh
# The images' entrypoint, with the contract of TF Serving's image (its /usr/bin/tf_serving_entrypoint.sh):
# serve ${MODEL_BASE_PATH}/${MODEL_NAME} as model ${MODEL_NAME}, gRPC on 8500 and REST on 8501, batching on.
# Flags given after the image name come after these defaults, and a later flag wins over an earlier one
# (--model_config_file replaces --model_name and --model_base_path altogether, as in TF Serving).
# A first argument that is not a flag is run as a command instead, e.g. `docker run -it IMAGE sh`.
# exec: the server replaces this shell as PID 1, so SIGTERM from `docker stop` reaches it and it drains.
set -eu

case "${1:-}" in
    "" | -*) ;;
    *) exec "$@" ;;
esac

exec tensorflow_model_server \
    --port=8500 \
    --rest_api_port=8501 \
    --model_name="${MODEL_NAME:-model}" \
    --model_base_path="${MODEL_BASE_PATH:-/models}/${MODEL_NAME:-model}" \
    --enable_batching=true \
    "$@"
