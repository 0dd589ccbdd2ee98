"""The flows of the fewshot app, one module per domain (UI only)."""
