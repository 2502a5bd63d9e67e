"""The accounts slice over HTTP: its routes, bodies, parameters and problem types."""
