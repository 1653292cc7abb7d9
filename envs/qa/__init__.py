"""QA with search: HotpotQA-style multi-hop questions answered through a local corpus.

The agent acts as in ReAct's Wikipedia environment: ``search[entity]`` (first
sentences of the page, or similar titles), ``lookup[keyword]`` (next sentence of the
current page containing the keyword) and ``finish[answer]`` (graded by HotpotQA's
exact match; F1 is reported too). Retrieval is a BM25 index (bm25s) built once per
service. Data: HotpotQA (CC BY-SA 4.0) question files + corpus, or the small
built-in set shipped under ``builtin/``.
"""
