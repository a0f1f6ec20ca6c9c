with orders as (
    select * from {{ ref('stg_orders') }}
),

items as (
    select * from {{ ref('stg_order_items') }}
),

products as (
    select * from {{ ref('stg_products') }}
),

order_lines as (
    select
        items.order_id,
        sum(items.quantity) as item_count,
        sum(items.quantity * products.unit_price_cents) as order_total_cents
    from items
    inner join products using (product_id)
    group by items.order_id
)

select
    orders.order_id,
    orders.customer_id,
    orders.order_date,
    orders.status,
    coalesce(order_lines.item_count, 0) as item_count,
    {{ cents_to_dollars('coalesce(order_lines.order_total_cents, 0)') }} as order_total,
    -- returned and cancelled orders do not count towards revenue
    orders.status not in ('returned', 'cancelled') as is_revenue
from orders
left join order_lines using (order_id)
