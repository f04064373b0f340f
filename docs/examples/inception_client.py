"""TF Serving's classic Inception client, unchanged: works against `make serve`.

    .venv/bin/python docs/examples/inception_client.py --server=localhost:8500 --image=cat.jpg
"""

import argparse

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="localhost:8500")
    parser.add_argument("--image", required=True, help="a JPEG or PNG file")
    args = parser.parse_args()

    with open(args.image, "rb") as f:
        data = f.read()
    channel = grpc.insecure_channel(args.server)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "inception"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([data], shape=[1]))
    result = stub.Predict(request, 10.0)  # 10 secs timeout
    classes = tf.make_ndarray(result.outputs["classes"])[0]
    scores = tf.make_ndarray(result.outputs["scores"])[0]
    for label, score in zip(classes, scores):
        print(f"{score:.4f}  {label.decode()}")


if __name__ == "__main__":
    main()
