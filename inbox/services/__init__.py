"""Domain services: plain functions that take objects plus keyword-only actor= and now=."""
