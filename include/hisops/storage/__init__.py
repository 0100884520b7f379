"""Shared storage every worker must see the same: marker files with the catalog's storage id."""
