"""Routing: policy models, pricing and the choice of the cheapest adequate model. Pure: no I/O here."""
