"""Backbone families, one module each; importing registers their blocks."""
