"""How results look, for every surface: the dashboard's pages and the Markdown/HTML reports.

Number formats, the SVG charts and the report view live here, with the one Jinja
environment both surfaces render with, so a chart or a number reads the same everywhere.
"""
