include: "views/*.view.lkml"

explore: customer_ltv {
  description: "Lifetime value and value tier per ordering customer."
}

explore: fct_orders {
  description: "One row per order with item count and total in dollars."
}
