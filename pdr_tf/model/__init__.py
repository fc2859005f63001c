"""The de-renderer: networks, the model, losses, LOOCC, the objective, the optimizer."""
