"""The controllers: each parses the request, sends one request through the mediator and shapes
the response. Nothing else happens here."""
