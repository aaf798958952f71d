"""Every model the stages run, loaded through ``streetsynth.models.load.load(kind, spec)``, and the tiny random ones for tests."""
