"""Training data made by a model: synthesis from personas (``data synth``) and augmentation (``data augment``)."""
