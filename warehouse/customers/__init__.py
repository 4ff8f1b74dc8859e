"""Customer models: purchase propensity (and replenishment from the demand forecast)."""
