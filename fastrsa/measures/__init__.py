"""Similarity measures beyond RSA, each a composition of fastrsa's ops on many models at once:
CKA (cka.py), Duality Diagram Similarity (dds.py), SVCCA (svcca.py), attribution-map
similarity (attribution.py), on per-model Gram matrices (gram.py). The public entry point is
`fastrsa.similarity` (fastrsa/similarity.py)."""

__all__: list[str] = []
