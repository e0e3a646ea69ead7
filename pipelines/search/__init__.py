"""FAQ search: words (BM25) and meaning (a small embedding model shipped in a wheel), fused by
reciprocal rank fusion, with typo tolerance and a rule for staying quiet. One job per module:
`text` (words to terms), `typos`, `lexical` (BM25), `semantic` (the model and its vector cache),
`fusion`, `index` (one knowledge base's search), `abstention`, `evaluation` (hit rates)."""
