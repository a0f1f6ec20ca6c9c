-- Lifetime value per customer who has placed at least one order.
with orders as (
    select * from {{ ref('fct_orders') }}
),

per_customer as (
    select
        customer_id,
        count(*) as order_count,
        count(*) filter (where is_revenue) as revenue_order_count,
        coalesce(sum(order_total) filter (where is_revenue), 0) as lifetime_value
    from orders
    group by customer_id
)

select
    customer_id,
    order_count,
    revenue_order_count,
    lifetime_value,
    case
        when revenue_order_count = 0 then null
        else round(lifetime_value / revenue_order_count, 2)
    end as average_order_value,
    case
        when lifetime_value >= 500 then 'gold'
        when lifetime_value >= 200 then 'silver'
        when lifetime_value > 0 then 'bronze'
        else 'none'
    end as ltv_tier
from per_customer
