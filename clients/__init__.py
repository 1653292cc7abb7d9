"""Clients of trajgym services: async env client, remote gymnasium env, typed errors."""
