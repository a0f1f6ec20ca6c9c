-- A customer cannot order before they signed up. Returns offending orders.
select
    orders.order_id,
    orders.order_date,
    customers.signup_date
from {{ ref('fct_orders') }} as orders
inner join {{ ref('dim_customers') }} as customers using (customer_id)
where orders.order_date < customers.signup_date
