view: fct_orders {
  sql_table_name: "shop_dev"."dev"."fct_orders" ;;
  label: "Orders"
  description: "One row per order with item count and total in dollars."

  dimension: order_id {
    type: number
    primary_key: yes
    description: "The order."
    sql: ${TABLE}.order_id ;;
  }

  dimension: customer_id {
    type: number
    description: "Who ordered."
    sql: ${TABLE}.customer_id ;;
    label: "Customer"
    hidden: yes
  }

  dimension: status {
    type: string
    sql: ${TABLE}.status ;;
  }

  dimension: item_count {
    type: number
    sql: ${TABLE}.item_count ;;
  }

  dimension: order_total {
    type: number
    sql: ${TABLE}.order_total ;;
  }

  dimension: is_revenue {
    type: yesno
    sql: ${TABLE}.is_revenue ;;
  }

  dimension_group: order_date {
    type: time
    timeframes: [
      raw,
      date,
      week,
      month,
      quarter,
      year,
    ]
    convert_tz: no
    datatype: date
    sql: ${TABLE}.order_date ;;
  }

  measure: count {
    type: count
  }

  measure: order_count_distinct {
    type: count_distinct
    sql: ${TABLE}.order_id ;;
  }
}
