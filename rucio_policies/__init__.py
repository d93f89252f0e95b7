"""rucio_policies package."""
