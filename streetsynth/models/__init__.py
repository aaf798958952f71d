"""Model loading and tiny random models for tests: the detector, SAM, inpainting."""
