"""What the env service and its clients agree on: request/response bodies and error types.

`wire.env_api` (the env service's v1 and AgentGym bodies), `wire.hub_api` (the hub's),
`wire.errors` (one definition per error, raised by the service and re-raised by clients).
Imports only `envs` (for the env types the bodies carry).
"""
