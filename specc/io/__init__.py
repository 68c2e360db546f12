"""Files in and out: .npz reading, weights files and atomic writes, datasets mapped onto a model."""
