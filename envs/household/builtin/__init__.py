"""Built-in data of the household env: the skeleton of generated game files."""
