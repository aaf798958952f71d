"""Loading the models the stages run: which family a model belongs to, how to load it, what it is."""
