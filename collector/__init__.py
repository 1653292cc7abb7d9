"""Trajectory collector: drives model servers against env services and stores every turn."""
