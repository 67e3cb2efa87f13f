"""spore: trust nothing that is not verified."""
