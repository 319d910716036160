"""The shapes of what the entry points take and answer, one module per feature: the API's request and
response models (its OpenAPI document)."""
