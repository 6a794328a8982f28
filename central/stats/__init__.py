"""Statistics for the console's charts: alerts per day, time to acknowledge, SLA kept."""
