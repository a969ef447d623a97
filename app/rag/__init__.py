"""Knowledge bases: parsing uploads, structure-aware chunking, the embedder engines, ingestion,
and hybrid search (Postgres full-text ranking + pgvector neighbours, fused by reciprocal rank).

Knows nothing of HTTP or calls: routes and the call loop use it through `KnowledgeService` and
`HybridSearch`.
"""
