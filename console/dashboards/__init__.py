"""Dashboards in the staff console (issue 13): pages that lead with charts, one JSON endpoint per chart
(the one the page draws from), CSV export of each, all read from the aggregates the analytics service keeps."""
