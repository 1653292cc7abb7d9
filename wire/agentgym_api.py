"""Bodies of the AgentGym-compatible routes: what AgentGym's own clients send and read.

One group per original server (AgentGym's ``agentenv-<env>/…/model.py`` and what its
``server.py`` returns), so that the client cannot tell trajgym from the original:
WebShop, ALFWorld, SqlGym, SearchQA, plus the generic surface for any other env.
Requests may carry more than the original accepts (e.g. `idx` besides `session_id`),
never less; actions are limited to `MAX_ACTION_CHARS` like the v1 API's.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from wire.env_api import MAX_ACTION_CHARS

ActionText = Annotated[str, Field(max_length=MAX_ACTION_CHARS)]
DataIndex = Annotated[int | None, Field(ge=0)]


# ----- generic surface (any env without an AgentGym original) -------------------------------
class AgentGymRef(BaseModel):
    """An instance, named `env_idx` (WebShop-style clients) or `id` (ALFWorld-style ones)."""

    env_idx: int | None = None
    id: int | None = None

    @model_validator(mode="after")
    def _one(self) -> "AgentGymRef":
        if self.env_idx is None and self.id is None:
            raise ValueError("give the env index as `env_idx` or `id`")
        return self

    @property
    def index(self) -> int:
        return self.env_idx if self.env_idx is not None else self.id  # type: ignore[return-value]


class AgentGymCreate(BaseModel):
    id: int | None = Field(default=None, ge=0, description="optional data index to reset to")


class AgentGymReset(AgentGymRef):
    session_id: DataIndex = None
    idx: DataIndex = None
    game: DataIndex = None
    data_idx: DataIndex = None
    item_id: DataIndex = None
    world_type: str | None = Field(default=None, max_length=100)

    @property
    def data_index(self) -> int:
        for value in (self.session_id, self.idx, self.game, self.data_idx, self.item_id):
            if value is not None:
                return value
        return 0


class AgentGymStep(AgentGymRef):
    action: ActionText


class AgentGymStepResult(BaseModel):
    observation: str
    state: str
    reward: float
    done: bool
    available_actions: list[str]
    info: dict[str, Any]


class AgentGymObservation(BaseModel):
    id: int
    env_idx: int
    observation: str
    available_actions: list[str]
    task_id: str
    instruction: str


# ----- WebShop (agentenv-webshop) ---------------------------------------------------------
class EnvIdx(BaseModel):
    env_idx: int


class WebShopReset(EnvIdx):
    session_id: int | None = Field(default=None, ge=0, description="WebShop goal index (the shuffled goal order)")
    idx: int | None = Field(default=None, ge=0, description="same as session_id")


class WebShopStep(EnvIdx):
    action: ActionText


class WebShopStepResult(BaseModel):
    state: str
    reward: float
    done: bool
    info: None = None


class WebShopAvailableActions(BaseModel):
    has_search_bar: bool
    clickables: list[str]


class WebShopState(BaseModel):
    url: str
    html: str
    instruction_text: str


# ----- ALFWorld (agentenv-alfworld) ---------------------------------------------------------
class AlfWorldRef(BaseModel):
    id: int


class AlfWorldCreated(BaseModel):
    id: int


class AlfWorldReset(AlfWorldRef):
    game: int = Field(ge=0, description="AgentGym's ALFWorld game index (mappings_train.json + mappings_test.json)")
    world_type: str = Field(default="Text", max_length=100)


class AlfWorldStep(AlfWorldRef):
    action: ActionText


class AlfWorldResetResult(BaseModel):
    id: int
    observation: str
    available_actions: list[str]
    task_type: str


class AlfWorldStepResult(BaseModel):
    observation: str
    reward: float
    available_actions: list[str]
    done: bool


class AlfWorldError(BaseModel):
    """ALFWorld's server answers its refusals with status 200 and this body."""

    error: str


class AlfWorldDetail(BaseModel):
    world_type: str | None = None
    game: int | None = None
    observation: str | None = None
    available_actions: list[str] | None = None
    done: bool = False
    reward: float = 0.0
    deleted: bool = False


# ----- SqlGym (agentenv-sqlgym) -------------------------------------------------------------
class SqlGymReset(EnvIdx):
    item_id: int = Field(ge=0, description="AgentGym's SqlGym item id")


class SqlGymStep(EnvIdx):
    action: ActionText


class SqlGymStepResult(BaseModel):
    state: str
    reward: float
    done: bool
    info: dict[str, Any]


# ----- SearchQA (agentenv-searchqa) ---------------------------------------------------------
class SearchQACreate(BaseModel):
    id: int | None = Field(default=None, ge=0, description="an item id to start on (optional)")


class SearchQAReset(EnvIdx):
    id: int = Field(ge=0, description="AgentGym's SearchQA item id")


class SearchQAStep(EnvIdx):
    action: ActionText


class SearchQAStepResult(BaseModel):
    observation: str
    reward: float
    done: bool
    info: None = None
