"""One module per outside system: its formats in, our domain events out."""
