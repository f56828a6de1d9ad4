"""The category classifier: features and neighbours (knn), choosing its settings
(model_selection), the gate's out-of-fold estimate and evaluation, calibration, the per-posting
policy (which postings get a category written), one training, the train / promote / gate
decisions, the model in service and imputing with it (serving), what a saved model keeps, and
MLflow's registry, the one store of fitted models (registry)."""
