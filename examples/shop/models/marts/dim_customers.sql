with customers as (
    select * from {{ ref('stg_customers') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

order_dates as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as most_recent_order_date
    from orders
    group by customer_id
),

ltv as (
    select * from {{ ref('customer_ltv') }}
)

select
    customers.customer_id,
    customers.full_name,
    customers.email,
    customers.country_code,
    customers.signup_date,
    order_dates.first_order_date,
    order_dates.most_recent_order_date,
    coalesce(ltv.order_count, 0) as order_count,
    coalesce(ltv.lifetime_value, 0) as lifetime_value,
    coalesce(ltv.ltv_tier, 'none') as ltv_tier
from customers
left join order_dates using (customer_id)
left join ltv using (customer_id)
