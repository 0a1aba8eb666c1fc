"""Human handover: queues per team, exclusive claims, the handoff packet and the console's handover pages."""
