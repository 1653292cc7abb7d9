"""WebShop-like web shop environment (after Yao et al., 2022, WebShop, MIT licence).

Search page → results page (10 per page, top 50 by BM25) → item page (options,
Description / Features / Reviews sub-pages) → Buy Now, scored by WebShop's
`get_reward` on synthetic goals built from `items_ins_v2*.json`. The env class is
`envs.webshop.env.WebShopEnv`; its shared data (catalog, goals, index) is built by
`envs.webshop.data.load_data`.
"""
