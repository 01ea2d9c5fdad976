"""What the trainer and the inference service share about the model: how it is built from the
base model, how text is encoded, and the on-disk weights format of a version."""
