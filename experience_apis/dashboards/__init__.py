"""The dashboards experience API: the figures finance operations watch, one call per widget."""
