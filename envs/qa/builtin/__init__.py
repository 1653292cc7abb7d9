"""Built-in QA data: 48 original multi-hop questions over a 116-page invented corpus (shipped as package data)."""
