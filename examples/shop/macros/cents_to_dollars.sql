{#- Convert an integer amount in cents to a dollar amount with two decimals. -#}
{% macro cents_to_dollars(column_name) -%}
    round(cast({{ column_name }} as decimal(12, 2)) / 100, 2)
{%- endmacro %}
