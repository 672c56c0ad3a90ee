"""advseg package."""
