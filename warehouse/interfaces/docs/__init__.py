"""`wh docs`: a static HTML site of the models and the forecast report, readable from disk."""
