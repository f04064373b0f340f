"""The exported model's request-level signatures and their inputs, shared by every protocol adapter.

See docs/architecture.md for the SavedModel contract these names come from.
"""

DEFAULT_SIGNATURE = "serving_default"  # TF Serving's default when a request names none
ENCODED_IMAGES_SIGNATURE = "predict_images"  # the classic Inception client's: encoded images
SERIALIZED_EXAMPLES_SIGNATURE = "serving_default"  # serialized tf.Examples with 'image/encoded'
PIXELS_SIGNATURE = "classify_pixels"  # preprocessed float pixels [N, H, W, 3]
INPUT_KEY_BY_SIGNATURE = {
    ENCODED_IMAGES_SIGNATURE: "images",
    SERIALIZED_EXAMPLES_SIGNATURE: "inputs",
    PIXELS_SIGNATURE: "pixels",
}
OUTPUT_KEYS = ("classes", "scores")
IMAGE_FEATURE = "image/encoded"  # the tf.Example bytes feature holding the encoded image
