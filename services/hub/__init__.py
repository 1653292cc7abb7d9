"""The hub: a registry of env services and their replicas (`trajgym hub`).

`app.create_hub_app` builds the FastAPI app; `store` persists registrations with
SQLAlchemy (tables prefixed `hub_`); `health` checks replicas in the background;
`registrar` is what `trajgym serve --register` uses to join and leave the hub.
The client side (and session placement) lives in `clients.hub_client`.
"""
