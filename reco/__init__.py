"""reco package."""
