{# The source raw.raw_order_items is the seed raw_order_items. dbt does not link a source to the
    seed that loads it, so the depends_on hint below orders this model after the
    seed; otherwise `dbt build` on an empty database would race the seed. #}
-- depends_on: {{ ref('raw_order_items') }}
with source as (
    select * from {{ source('raw', 'raw_order_items') }}
)

select
    id as order_item_id,
    order_id,
    product_id,
    quantity
from source
