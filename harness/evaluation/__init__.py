"""Consistency evaluation: answers vs training references by embedding, ROUGE-L and an LLM judge."""
