"""Modelling: the architectures (one plug-in module each), augmentation inside the model, the training
schedule and callbacks, decoding outputs to ids, loading and exporting models, TensorFlow start-up."""
