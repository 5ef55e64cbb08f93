"""Tools the model can call: server-side (run here) and client-side (run by the IDE)."""
