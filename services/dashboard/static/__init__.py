"""CSS and JavaScript of the dashboard (a package so that the wheel ships them as package data)."""
