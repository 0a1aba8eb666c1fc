"""Clients for the services the actions talk to (Redis: the interaction log and the handover queue)."""
