"""QA with search: HotpotQA multi-hop questions answered through a local corpus.

The agent acts in ReAct's Wikipedia environment (its texts, refusals and state
changes by default; see `envs.qa.react`): ``search[entity]`` (the page's first
sentences, or similar titles), ``lookup[keyword]`` (the next sentence of the current
page containing the keyword), ``think[thought]`` and ``finish[answer]`` (graded by
HotpotQA's exact match; F1 is reported too). Retrieval is a BM25 index (bm25s) built
once per service, standing in for the Wikipedia API. Data: HotpotQA (CC BY-SA 4.0)
question files + corpus, or the small built-in set shipped under ``builtin/``.
"""
