"""Training and evaluation of the built-in look-up model: tokenizer, data generators and the training loop."""
