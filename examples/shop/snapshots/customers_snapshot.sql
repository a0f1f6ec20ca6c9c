{#-
    Type-2 history of customers. The timestamp strategy records a new version
    whenever a customer's updated_at moves forward.
-#}
{% snapshot customers_snapshot %}

{{
    config(
        unique_key='id',
        strategy='timestamp',
        updated_at='updated_at',
    )
}}

-- depends_on: {{ ref('raw_customers') }}  (run after the seed in `dbt build`)
select * from {{ source('raw', 'raw_customers') }}

{% endsnapshot %}
