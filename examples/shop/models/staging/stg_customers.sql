{# The source raw.raw_customers is the seed raw_customers. dbt does not link a source to the
    seed that loads it, so the depends_on hint below orders this model after the
    seed; otherwise `dbt build` on an empty database would race the seed. #}
-- depends_on: {{ ref('raw_customers') }}
with source as (
    select * from {{ source('raw', 'raw_customers') }}
)

select
    id as customer_id,
    first_name,
    last_name,
    first_name || ' ' || last_name as full_name,
    lower(email) as email,
    upper(country_code) as country_code,
    signup_date,
    updated_at
from source
