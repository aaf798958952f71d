"""Loading the models the stages run (inpainting families, the detector, SAM) and tiny random ones for tests."""
