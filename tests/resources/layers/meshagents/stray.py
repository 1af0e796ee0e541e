"""A module no layer names."""
