"""WebShop (Yao et al., 2022, princeton-nlp/WebShop, MIT licence) as a trajgym environment.

Search page → results page (10 per page, top 50 by BM25) → item page (options,
Description / Features / Reviews sub-pages) → Buy Now, scored by WebShop's
`get_reward` (`envs.webshop.reward`) on the synthetic goals built from
`items_ins_v2*.json`. By default the observations, clickables, action syntax and
grading are WebShop's text environment's; friendlier variants are named modes
(`envs.webshop.env`). The env class is `envs.webshop.env.WebShopEnv`; its shared
data (catalog, goals, index, title nouns) is built by `envs.webshop.data.load_data`.
Title nouns come from spaCy when it is installed (`envs.webshop.nouns`).
"""
