"""Reports written from the runs' files alone (no weights, no network): the model card, the plots, the tables."""
