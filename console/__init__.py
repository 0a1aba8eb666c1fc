"""The staff console (issue 12): sign-in with roles, the handover queues and conversations, run by `python -m console serve`."""
