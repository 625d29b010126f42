"""Serving: the TF Serving signatures of an exported model and the TensorFlow-side export."""
