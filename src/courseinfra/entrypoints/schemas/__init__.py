"""The shapes of what the entry points take and answer, one module per feature: the API's request and
response models (its OpenAPI document) and, beside each, the function that builds the JSON document of
an entity (``batch_json``, ``enrolment_json``, ...), which the API answers and the CLI prints, so both
show the same document. Field names are the column names of Sunbird's tables (``course_batch``,
``user_enrolments``, ``user_activity_agg``); dates and times are ISO 8601 strings."""
