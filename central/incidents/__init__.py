"""Incidents: alerts grouped by camera and time, mergeable by grid and category, split by hand."""
