"""What is checked: declared functions, their named inputs, and the cases drawn for them."""
