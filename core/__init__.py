"""actmax core: registries, contracts, run loops, records, CLI."""
__version__ = "0.1.0"
