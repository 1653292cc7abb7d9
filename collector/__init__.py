"""Trajectory collector: drives model servers against env services and stores every turn.

`collector.config` (the job, its config hash), `collector.collect` (one asyncio loop,
N episodes in flight), `collector.episode` (one rollout, typed outcome, infra retries),
`collector.prompts` (ReAct text / native tools), `collector.model_client` (OpenAI chat
completions over pooled aiohttp, vLLM extras), `collector.envlink` (env calls),
`collector.gcpolicy` / `collector.fdlimit` (the run's GC settings and open-file limit),
`store` (SQLAlchemy 2 + Alembic; sync engine driven from one dedicated thread),
`store.scoring` (per env/split scores), `cli.collect` (`collect`, `runs`, `show`, `eval`).
"""
