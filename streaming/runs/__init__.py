"""Runs: turns that outlive their connection, their event logs, and their readers."""
