"""Demand forecasting: features for training, models, rolling-origin backtest, metrics, tables."""
