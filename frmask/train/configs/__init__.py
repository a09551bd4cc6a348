"""Training configurations, one small TOML file per variant and scale."""
