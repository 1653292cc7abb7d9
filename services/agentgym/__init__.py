"""The AgentGym-compatible routes: AgentGym's own env clients and Evaluator run unchanged.

Each of the four envs answers as the AgentGym server it stands in for — webshop as
agentenv-webshop (`webshop`), household as agentenv-alfworld (`alfworld`), sql as
agentenv-sqlgym (`sqlgym`), qa as agentenv-searchqa (`searchqa`) — with the same routes,
fields, shapes and episode semantics, and data indices that mean the same items as in
AgentGym (`indices`, `alfworld_games`). Any other env gets a generic surface (`generic`).
Instance ids are random integers; their lifetime policy is in `instances`.
"""

from services.agentgym.router import agentgym_router

__all__ = ["agentgym_router"]
