"""API routes, one module per resource: ``native_*`` (/api/v1) and ``cloud_*`` (dbt Cloud v2/v3)."""
