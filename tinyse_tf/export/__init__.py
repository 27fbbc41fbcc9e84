"""Export of trained models: int8 TFLite conversion, streaming graphs and Edge TPU checks."""
