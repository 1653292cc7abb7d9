"""trajgym environments: the env protocol (`envs.base`) and the four built-in envs.

Importing this package registers every built-in env with gymnasium as
``trajgym/<Name>-v0``.
"""

from envs.base import Env, EnvData
from envs.gym_adapter import register_all

register_all()

__all__ = ["Env", "EnvData"]
