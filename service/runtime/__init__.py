"""The model runtime: the only code that calls TensorFlow at serve time."""
