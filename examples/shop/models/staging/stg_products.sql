{# The source raw.raw_products is the seed raw_products. dbt does not link a source to the
    seed that loads it, so the depends_on hint below orders this model after the
    seed; otherwise `dbt build` on an empty database would race the seed. #}
-- depends_on: {{ ref('raw_products') }}
with source as (
    select * from {{ source('raw', 'raw_products') }}
)

select
    id as product_id,
    product_name,
    category,
    unit_price_cents,
    {{ cents_to_dollars('unit_price_cents') }} as unit_price
from source
