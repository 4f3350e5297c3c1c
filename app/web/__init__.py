"""HTTP: thin blueprints that parse input, call the domain, and answer."""
