view: customer_ltv {
  sql_table_name: "shop_dev"."dev"."customer_ltv" ;;
  description: "Lifetime value and value tier per ordering customer."

  dimension: customer_id {
    type: number
    primary_key: yes
    sql: ${TABLE}.customer_id ;;
  }

  dimension: ltv_tier {
    type: string
    sql: ${TABLE}.ltv_tier ;;
  }

  dimension: order_count {
    type: number
    sql: ${TABLE}.order_count ;;
  }

  dimension: revenue_order_count {
    type: number
    sql: ${TABLE}.revenue_order_count ;;
  }

  dimension: lifetime_value {
    type: number
    sql: ${TABLE}.lifetime_value ;;
  }

  dimension: average_order_value {
    type: number
    sql: ${TABLE}.average_order_value ;;
  }

  measure: count {
    type: count
  }
}
