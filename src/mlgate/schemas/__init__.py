"""The published JSON Schemas (package data): the evidence document and mlgate.yml."""
